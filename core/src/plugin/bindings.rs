//! Rust bindings of the contract in `wit/`, generated at compile time: the async world
//! `plugin` (many users per instance) and the sync world `plugin-sync` (one user per instance).

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

/// The sync world. Its resources are the same host types as the async world's, and its plain
/// `send` is still asynchronous on the host's side: the guest's call suspends its instance (the
/// only user in it), never the thread. The types interface is shared with the async bindings.
pub mod sync {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin-sync",
        imports: {
            "perfhost:plugin/host-sync.[method]user-context.send": async | trappable,
            "perfhost:plugin/host-sync.[method]user-context.sleep": async | trappable,
            "perfhost:plugin/host-sync.[method]user-context.send-batch": async | trappable,
            default: trappable,
        },
        exports: { default: async | store },
        with: {
            "perfhost:plugin/types": super::perfhost::plugin::types,
            "perfhost:plugin/host-sync.request": crate::plugin::host_impl::RequestState,
            "perfhost:plugin/host-sync.response": crate::plugin::host_impl::ResponseState,
            "perfhost:plugin/host-sync.user-context": crate::plugin::host_impl::UserContextState,
        },
    });
}

/// The contract's package name.
pub const CONTRACT_PACKAGE: &str = "perfhost:plugin";
/// The contract version this host speaks.
pub const CONTRACT_VERSION: &str = "0.2.4";
/// The versions this host loads: every 0.2.x up to its own (0.2.x versions only add, and
/// wasmtime's linker resolves a 0.2.0 import to the 0.2.4 definition).
pub const COMPATIBLE_VERSIONS: [&str; 5] = ["0.2.0", "0.2.1", "0.2.2", "0.2.3", "0.2.4"];
/// The versions of the sync world (added in 0.2.2).
pub const SYNC_VERSIONS: [&str; 3] = ["0.2.2", "0.2.3", "0.2.4"];

/// The wasmtime this host embeds (named when a component does not load).
pub const WASMTIME_VERSION: &str = "50.0.1";
/// Toolchains whose components this host is tested to load, as built binaries
/// (host/tests/fixtures/compiled) and from source in CI.
pub const KNOWN_TOOLCHAINS: &str = "Rust with wit-bindgen 0.63, componentize-py 0.25.1, jco 1.35 / componentize-js 0.23, wit-bindgen c 0.63";

#[cfg(test)]
mod tests {
    /// The version named in load errors is the one Cargo.lock builds.
    #[test]
    fn wasmtime_version_matches_the_lock_file() {
        let lock = include_str!("../../../Cargo.lock");
        let entry = format!(
            "name = \"wasmtime\"\nversion = \"{}\"",
            super::WASMTIME_VERSION
        );
        assert!(lock.contains(&entry), "Cargo.lock has no {entry}");
    }
}
