//! Rust bindings of the contract in `wit/`, generated at compile time.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // `send` is an `async func` in the contract: it gets the store's accessor and runs while
    // the instance's other users go on. Exports are called concurrently, one task per user call.
    imports: { default: trappable },
    exports: { default: async | store },
    with: {
        "perfhost:plugin/host.request": super::host_impl::RequestState,
        "perfhost:plugin/host.response": super::host_impl::ResponseState,
        "perfhost:plugin/host.user-context": super::host_impl::UserContextState,
    },
});

/// The contract version this host speaks.
pub const CONTRACT_PACKAGE: &str = "perfhost:plugin";
pub const CONTRACT_VERSION: &str = "0.2.1";
/// The versions this host loads: every 0.2.x up to its own (0.2.x versions only add, and
/// wasmtime's linker resolves a 0.2.0 import to the 0.2.1 definition).
pub const COMPATIBLE_VERSIONS: [&str; 2] = ["0.2.0", "0.2.1"];
