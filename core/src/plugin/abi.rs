//! What a component's own canonical options say about how its users can share an instance. A
//! plugin of the async world may still be lifted or lowered synchronously (a `--sync` build
//! flag, an older toolchain): then one blocking call holds the whole instance, and sharing it
//! among users would silently serialise them. The component's `canon lift` / `canon lower`
//! entries tell, whatever it claims to export.

use wasmparser::{
    CanonicalFunction, CanonicalOption, ComponentAlias, ComponentExternalKind, ComponentInstance,
    ComponentTypeRef, Parser, Payload,
};

/// The calls that block their instance when made synchronously.
const SHARED_CALLS: [&str; 4] = ["send", "on-start", "run-task", "on-stop"];

/// The functions of the contract a component calls or exports without the async option, by
/// their contract names (`send`, `run-task`, …). Empty when every one is async (or the
/// component does not use it).
pub fn sync_calls(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    // Component-level function index space of the outer component: its entries' names, and
    // which lifted functions lack the async option.
    let mut func_names: Vec<Option<String>> = Vec::new();
    let mut sync_lifts: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return found;
        };
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            _ if depth != 1 => {}
            Payload::ComponentImportSection(reader) => {
                for import in reader.into_iter().flatten() {
                    if matches!(import.ty, ComponentTypeRef::Func(_)) {
                        func_names.push(None);
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader.into_iter().flatten() {
                    if let ComponentAlias::InstanceExport {
                        kind: ComponentExternalKind::Func,
                        name,
                        ..
                    } = alias
                    {
                        func_names.push(Some(name.to_string()));
                    }
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for canon in reader.into_iter().flatten() {
                    match canon {
                        CanonicalFunction::Lift { options, .. } => {
                            if !options.contains(&CanonicalOption::Async) {
                                sync_lifts.push(func_names.len());
                            }
                            func_names.push(None);
                        }
                        CanonicalFunction::Lower {
                            func_index,
                            options,
                        } => {
                            let name = func_names.get(func_index as usize).cloned().flatten();
                            if let Some(call) = name.as_deref().and_then(contract_call) {
                                if !options.contains(&CanonicalOption::Async) {
                                    found.push(call.to_string());
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                // A lifted export gets its name where it is put into the exported instance.
                for instance in reader.into_iter().flatten() {
                    let named: Vec<(&str, u32)> = match &instance {
                        ComponentInstance::Instantiate { args, .. } => args
                            .iter()
                            .filter(|a| a.kind == ComponentExternalKind::Func)
                            .map(|a| (a.name, a.index))
                            .collect(),
                        ComponentInstance::FromExports(exports) => exports
                            .iter()
                            .filter(|e| e.kind == ComponentExternalKind::Func)
                            .map(|e| (e.name.name, e.index))
                            .collect(),
                    };
                    for (name, index) in named {
                        if sync_lifts.contains(&(index as usize)) {
                            if let Some(call) = contract_call(name) {
                                found.push(call.to_string());
                            }
                        }
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader.into_iter().flatten() {
                    if export.kind == ComponentExternalKind::Func {
                        func_names.push(None);
                    }
                }
            }
            _ => {}
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The contract's name of a lowered import or lifted export: `[method]user-context.send` →
/// `send`, `[method]user.run-task` (or a shim's `…-user-run-task`) → `run-task`. Exact
/// resource names, so WASI's `outgoing-datagram-stream.send` is not taken for ours.
fn contract_call(name: &str) -> Option<&'static str> {
    SHARED_CALLS.into_iter().find(|&call| {
        let resource = if call == "send" {
            "user-context"
        } else {
            "user"
        };
        name.ends_with(&format!("]{resource}.{call}"))
            || name.ends_with(&format!("-{resource}-{call}"))
            || name == format!("{resource}.{call}")
    })
}

#[cfg(test)]
mod tests {
    use super::contract_call;

    #[test]
    fn only_the_contracts_own_calls_are_named() {
        assert_eq!(contract_call("[method]user-context.send"), Some("send"));
        assert_eq!(contract_call("[method]user.run-task"), Some("run-task"));
        assert_eq!(contract_call("import-method-user-on-stop"), Some("on-stop"));
        assert_eq!(contract_call("[method]outgoing-datagram-stream.send"), None);
        assert_eq!(contract_call("[method]tcp-socket.send"), None);
        assert_eq!(contract_call("[method]user.next-task"), None);
    }
}
