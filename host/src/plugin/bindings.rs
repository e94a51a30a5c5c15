//! Rust bindings of the contract in `wit/`, generated at compile time.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: {
        // `send` awaits hyper: the guest is suspended, other users run meanwhile.
        "perfhost:plugin/host.[method]user-context.send": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "perfhost:plugin/host.request": super::host_impl::RequestState,
        "perfhost:plugin/host.response": super::host_impl::ResponseState,
        "perfhost:plugin/host.user-context": super::host_impl::UserContextState,
    },
});

/// The contract version this host speaks.
pub const CONTRACT_PACKAGE: &str = "perfhost:plugin";
pub const CONTRACT_VERSION: &str = "0.1.0";
