//! The built-in behaviours, compiled from `plugins/` by the build script and embedded: one
//! table, from which every list of them (the default set, help texts, errors) is derived.

/// Where the build put every plugin `.wasm` (built-ins and test fixtures).
pub const PLUGIN_DIR: &str = env!("PERFHOST_PLUGIN_DIR");

/// What a built-in is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An Auditor API user that runs when no plugin is named.
    Default,
    /// A behaviour for any service, named on purpose.
    General,
    /// The request of a benchmark (`perfhost bench`, `perfhost plugin bench`).
    Benchmark,
}

/// One built-in behaviour.
#[derive(Debug)]
pub struct Builtin {
    /// The name that selects it (`auditor_user`).
    pub name: &'static str,
    /// The component.
    pub bytes: &'static [u8],
    /// What it is for.
    pub role: Role,
    /// What it does, in a few words (help texts).
    pub summary: &'static str,
}

macro_rules! component {
    ($name:literal) => {
        include_bytes!(concat!(env!("PERFHOST_PLUGIN_DIR"), "/", $name, ".wasm"))
    };
}

/// Every built-in, the default set first, in the order it runs.
pub const BUILTINS: [Builtin; 6] = [
    Builtin {
        name: "auditor_user",
        bytes: component!("auditor_user"),
        role: Role::Default,
        summary: "health, verify and statistics of the Auditor API in its users' proportions",
    },
    Builtin {
        name: "burst_user",
        bytes: component!("burst_user"),
        role: Role::Default,
        summary: "rapid verifies with short waits",
    },
    Builtin {
        name: "heavy_user",
        bytes: component!("heavy_user"),
        role: Role::Default,
        summary: "large verify payloads",
    },
    Builtin {
        name: "http_get",
        bytes: component!("http_get"),
        role: Role::General,
        summary: "GET one path: --config-value path=/x",
    },
    Builtin {
        name: "auditor_benchmark",
        bytes: component!("auditor_benchmark"),
        role: Role::Benchmark,
        summary: "the Auditor benchmark request, for perfhost bench",
    },
    Builtin {
        name: "bench_verify",
        bytes: component!("bench_verify"),
        role: Role::Benchmark,
        summary: "the WASM side of perfhost plugin bench",
    },
];

/// The built-in of this name (`.wasm` allowed at the end).
pub fn find(name: &str) -> Option<&'static Builtin> {
    let name = name.trim_end_matches(".wasm");
    BUILTINS.iter().find(|b| b.name == name)
}

/// The component bytes of a built-in plugin.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    find(name).map(|b| b.bytes)
}

/// The names of the built-ins in `roles`, in the table's order.
pub fn names(roles: &[Role]) -> Vec<&'static str> {
    BUILTINS
        .iter()
        .filter(|b| roles.contains(&b.role))
        .map(|b| b.name)
        .collect()
}

/// Every built-in's name, comma-separated (error messages).
pub fn all_names() -> String {
    names(&[Role::Default, Role::General, Role::Benchmark]).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_a_component_found_by_its_name() {
        for b in &BUILTINS {
            assert_eq!(find(b.name).map(|f| f.name), Some(b.name));
            assert_eq!(
                find(&format!("{}.wasm", b.name)).map(|f| f.name),
                Some(b.name)
            );
            // The component-model preamble: \0asm, then a component's version and layer.
            assert_eq!(&b.bytes[..4], b"\0asm", "{}", b.name);
            assert_eq!(&b.bytes[6..8], &[1, 0], "{} is not a component", b.name);
        }
        assert_eq!(
            names(&[Role::Default]),
            ["auditor_user", "burst_user", "heavy_user"]
        );
        assert!(find("nope").is_none());
    }
}
