//! A sharded run as Kubernetes resources, built from the typed API (`k8s-openapi`): an
//! Indexed Job of N shard pods, a collector Job that merges their results, a ConfigMap with
//! the files the run flags name, and a ReadWriteMany claim the pods write results to.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvFromSource,
    EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretEnvSource, SecretKeySelector,
    SecurityContext, TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::ByteString;
use serde::Serialize;

use super::{Deployment, NamedFile};

/// The container's name (the pod failure policy names it).
pub const CONTAINER: &str = "perfhost";
/// Where the pods read the shipped files.
pub const FILES_DIR: &str = "/etc/perfhost/files";
/// Where the results claim is mounted.
pub const RESULTS_DIR: &str = "/results";
/// A ConfigMap holds at most 1 MiB of data.
pub const CONFIG_MAP_LIMIT: usize = 1 << 20;
/// The image's user (Dockerfile): the pods run as it, never as root.
const IMAGE_UID: i64 = 10001;

/// The Kubernetes side of `perfhost k8s render`.
#[derive(Debug, Clone, Default)]
pub struct K8sOptions {
    pub image: String,
    pub namespace: Option<String>,
    /// An existing ReadWriteMany claim for the results; else one is rendered.
    pub results_claim: Option<String>,
    /// Size of the rendered results claim.
    pub results_size: String,
    pub storage_class: Option<String>,
    /// An existing claim holding the files (for more than a ConfigMap's 1 MiB).
    pub files_claim: Option<String>,
    /// A Secret whose keys become the shards' environment (API_TOKEN, API_KEY).
    pub env_from_secret: Option<String>,
    /// The Secret holding the run flags' secrets (the target URL with its password,
    /// `--web-token`) [default: NAME-secrets].
    pub secret_name: Option<String>,
}

/// The Secret the shards read the run flags' secrets from (`secretKeyRef`), when there are
/// any: its name, and the keys it must hold.
pub fn secret_name(d: &Deployment, o: &K8sOptions) -> Option<String> {
    (!d.secrets.is_empty()).then(|| {
        o.secret_name
            .clone()
            .unwrap_or_else(|| format!("{}-secrets", d.name))
    })
}

/// That Secret as a manifest, values and all: never part of the rendered stream (which is
/// meant to be read, reviewed and committed), only of the file `--secret-file` names.
pub fn secret(d: &Deployment, o: &K8sOptions) -> Option<Secret> {
    let name = secret_name(d, o)?;
    Some(Secret {
        metadata: meta(d, o, &name, "secrets"),
        type_: Some("Opaque".into()),
        string_data: Some(
            d.secrets
                .iter()
                .map(|s| (s.name.to_string(), s.value.clone()))
                .collect(),
        ),
        ..Default::default()
    })
}

/// One rendered resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Resource {
    ConfigMap(Box<ConfigMap>),
    Claim(Box<PersistentVolumeClaim>),
    Job(Box<Job>),
}

/// Builds the resources of a sharded run; `files` are the deployment's files and their bytes.
pub fn render(
    d: &Deployment,
    o: &K8sOptions,
    files: &[(NamedFile, Vec<u8>)],
) -> Result<Vec<Resource>, String> {
    check_options(o)?;
    if d.password_in_settings {
        return Err("the target URL in the --config file carries a password, and that file is shipped in a ConfigMap anyone who may read the namespace can read: give the URL with -H on the command line instead (it then goes to the shards through a Secret)".into());
    }
    let size: usize = files.iter().map(|(_, b)| b.len()).sum();
    if o.files_claim.is_none() && size > CONFIG_MAP_LIMIT {
        return Err(format!(
            "the files the run flags name are {} in all, more than a ConfigMap's 1 MiB: copy them into a volume and pass --files-claim CLAIM (docs/scale-out.md, Kubernetes)",
            perfhost_core::plan::format_size(size)
        ));
    }
    let mut out = Vec::new();
    let files_map = format!("{}-files", d.name);
    if o.files_claim.is_none() && !files.is_empty() {
        out.push(Resource::ConfigMap(Box::new(config_map(
            d, o, &files_map, files,
        ))));
    }
    let claim = match &o.results_claim {
        Some(claim) => claim.clone(),
        None => {
            let claim = format!("{}-results", d.name);
            out.push(Resource::Claim(Box::new(results_claim(d, o, &claim))));
            claim
        }
    };
    let files_volume = (!files.is_empty()).then(|| Volume {
        name: "files".into(),
        config_map: o.files_claim.is_none().then(|| ConfigMapVolumeSource {
            name: files_map.clone(),
            ..Default::default()
        }),
        persistent_volume_claim: o.files_claim.as_ref().map(|c| {
            PersistentVolumeClaimVolumeSource {
                claim_name: c.clone(),
                read_only: Some(true),
            }
        }),
        ..Default::default()
    });
    out.push(Resource::Job(Box::new(shard_job(
        d,
        o,
        &claim,
        files_volume,
    ))));
    out.push(Resource::Job(Box::new(collector_job(d, o, &claim))));
    Ok(out)
}

/// The options a user types, checked before they reach a manifest.
fn check_options(o: &K8sOptions) -> Result<(), String> {
    if o.image.is_empty() || o.image.chars().any(char::is_whitespace) {
        return Err(format!(
            "--image `{}`: give an image reference such as registry.example/perfhost:0.3.0",
            o.image
        ));
    }
    let names = [
        ("--namespace", &o.namespace),
        ("--results-claim", &o.results_claim),
        ("--files-claim", &o.files_claim),
        ("--env-from-secret", &o.env_from_secret),
        ("--secret-name", &o.secret_name),
        ("--storage-class", &o.storage_class),
    ];
    for (flag, value) in names {
        if let Some(v) = value {
            let ok = !v.is_empty()
                && v.len() <= 253
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(format!(
                    "{flag} `{v}`: give a Kubernetes name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)"
                ));
            }
            if super::yaml11_retyped(v) {
                return Err(format!(
                    "{flag} `{v}`: kubectl's YAML reader takes `{v}` for a boolean, number or date, not a name — choose another name, e.g. perfhost-{v}"
                ));
            }
        }
    }
    let size = &o.results_size;
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let units = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    if digits.is_empty() || digits.parse::<f64>().is_err() || !units.contains(&unit) {
        return Err(format!(
            "--results-size `{size}`: give a Kubernetes quantity such as 500Mi or 2Gi"
        ));
    }
    Ok(())
}

fn labels(d: &Deployment, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "perfhost".into()),
        ("app.kubernetes.io/instance".into(), d.name.clone()),
        ("app.kubernetes.io/component".into(), component.into()),
    ])
}

fn meta(d: &Deployment, o: &K8sOptions, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: o.namespace.clone(),
        labels: Some(labels(d, component)),
        ..Default::default()
    }
}

fn config_map(
    d: &Deployment,
    o: &K8sOptions,
    name: &str,
    files: &[(NamedFile, Vec<u8>)],
) -> ConfigMap {
    // Text stays readable in `data`; a component or other binary goes to `binaryData`, and
    // so does a text a YAML 1.1 reader would retype (a file holding just `yes`).
    let (mut data, mut binary) = (BTreeMap::new(), BTreeMap::new());
    for (f, bytes) in files {
        match std::str::from_utf8(bytes) {
            Ok(text) if !super::yaml11_retyped(text) => {
                data.insert(f.key.clone(), text.to_string());
            }
            _ => {
                binary.insert(f.key.clone(), ByteString(bytes.clone()));
            }
        }
    }
    ConfigMap {
        metadata: meta(d, o, name, "files"),
        data: (!data.is_empty()).then_some(data),
        binary_data: (!binary.is_empty()).then_some(binary),
        ..Default::default()
    }
}

fn results_claim(d: &Deployment, o: &K8sOptions, name: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(d, o, name, "results"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            storage_class_name: o.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(o.results_size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where this run's results go inside the claim: one folder per name and start, so a
/// second attempt never finds the first one's files.
pub fn results_dir(d: &Deployment) -> String {
    format!("{RESULTS_DIR}/{}/{}", d.name, d.start_stamp())
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(IMAGE_UID),
        run_as_group: Some(IMAGE_UID),
        fs_group: Some(IMAGE_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn volume_of_claim(name: &str, claim: &str) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: None,
        }),
        ..Default::default()
    }
}

fn tmp_volume() -> Volume {
    Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn quantities(pairs: &[(&str, String)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
        .collect()
}

fn shard_job(d: &Deployment, o: &K8sOptions, claim: &str, files: Option<Volume>) -> Job {
    let mut args = vec![
        "run".to_string(),
        "--shard=auto".into(),
        format!("--start-at={}", d.start_at),
    ];
    // Kubernetes expands $(VAR) in args and turns $$ into $: a user's `$` stays a `$`.
    args.extend(
        d.args_with(|f| format!("{FILES_DIR}/{}", f.key))
            .into_iter()
            .map(|a| a.replace('$', "$$")),
    );
    args.extend([
        // Kubernetes expands $(VAR) from the container's environment.
        format!(
            "--json-file={}/shard-$(PERFHOST_SHARD_INDEX).json",
            results_dir(d)
        ),
        "--only-summary".into(),
    ]);
    let memory_mib = d.memory_bytes.div_ceil(1 << 20);
    let mut mounts = vec![
        mount("results", RESULTS_DIR, false),
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![volume_of_claim("results", claim), tmp_volume()];
    if let Some(files) = files {
        mounts.push(mount("files", FILES_DIR, true));
        volumes.push(files);
    }
    let container = Container {
        name: CONTAINER.into(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        working_dir: Some("/tmp".into()),
        env: Some(
            vec![
                // Kubernetes does not give a pod its Job's completion count: `--shard auto`
                // reads it here, beside JOB_COMPLETION_INDEX.
                env("PERFHOST_SHARD_COUNT", &d.shards.to_string()),
                EnvVar {
                    name: "PERFHOST_SHARD_INDEX".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path:
                                "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                                    .into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                env("HOME", "/tmp"),
            ]
            .into_iter()
            // The run flags' secrets, from their Secret: never in the args, which anyone who
            // may list pods reads.
            .chain(secret_name(d, o).into_iter().flat_map(|secret| {
                d.secrets.iter().map(move |s| EnvVar {
                    name: s.name.into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.clone(),
                            key: s.name.into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            }))
            .collect(),
        ),
        env_from: o.env_from_secret.as_ref().map(|s| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: s.clone(),
                    optional: None,
                }),
                ..Default::default()
            }]
        }),
        // No CPU limit: throttling a load generator mid-request would show up as latency.
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[
                ("cpu", format!("{}m", d.cpu_millis)),
                ("memory", format!("{memory_mib}Mi")),
            ])),
            limits: Some(quantities(&[("memory", format!("{}Mi", memory_mib * 2))])),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Default::default()
    };
    let shard_labels = labels(d, "shard");
    Job {
        metadata: meta(d, o, &d.name, "shard"),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(d.shards as i32),
            parallelism: Some(d.shards as i32),
            backoff_limit: Some(0),
            active_deadline_seconds: Some(d.deadline_s as i64),
            // A shard late for the start sent nothing: the run is short of its plan, so
            // the whole Job fails at once (any other failure fails it too: no retries).
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some(CONTAINER.into()),
                        operator: "In".into(),
                        values: vec![i32::from(crate::exit::BARRIER)],
                    }),
                    ..Default::default()
                }],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(shard_labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    security_context: Some(pod_security()),
                    // One shard per node where the nodes allow: load from many NICs.
                    topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "kubernetes.io/hostname".into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(shard_labels),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn collector_job(d: &Deployment, o: &K8sOptions, claim: &str) -> Job {
    let dir = results_dir(d);
    let args = vec![
        "k8s".to_string(),
        "collect".into(),
        format!("--from={dir}"),
        format!("--shards={}", d.shards),
        format!("--wait={}s", d.deadline_s),
        format!("--json-file={dir}/merged.json"),
        format!("--html={dir}/report.html"),
        format!("--junit={dir}/junit.xml"),
        format!("--exit-code-on-error={}", d.exit_code_on_error),
    ];
    let container = Container {
        name: CONTAINER.into(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        working_dir: Some("/tmp".into()),
        env: Some(vec![env("HOME", "/tmp")]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[
                ("cpu", "100m".into()),
                ("memory", "128Mi".into()),
            ])),
            limits: Some(quantities(&[("memory", "512Mi".into())])),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("results", RESULTS_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        security_context: Some(container_security()),
        ..Default::default()
    };
    Job {
        metadata: meta(d, o, &format!("{}-collect", d.name), "collector"),
        spec: Some(JobSpec {
            completions: Some(1),
            parallelism: Some(1),
            backoff_limit: Some(0),
            active_deadline_seconds: Some(d.deadline_s as i64 + 300),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(d, "collector")),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![container],
                    volumes: Some(vec![volume_of_claim("results", claim), tmp_volume()]),
                    security_context: Some(pod_security()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The resources as one YAML stream (`kubectl apply -f`), documents separated by `---`.
pub fn to_yaml(resources: &[Resource]) -> Result<String, String> {
    let mut out = String::new();
    for r in resources {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(r).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Reads a YAML stream back into typed resources (the round trip `render` is tested with).
pub fn from_yaml(text: &str) -> Result<Vec<Resource>, String> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        let typed = |e: serde_yaml::Error| format!("{kind}: {e}");
        out.push(match kind.as_str() {
            "ConfigMap" => {
                Resource::ConfigMap(Box::new(serde_yaml::from_value(value).map_err(typed)?))
            }
            "PersistentVolumeClaim" => {
                Resource::Claim(Box::new(serde_yaml::from_value(value).map_err(typed)?))
            }
            "Job" => Resource::Job(Box::new(serde_yaml::from_value(value).map_err(typed)?)),
            other => return Err(format!("unexpected kind `{other}`")),
        });
    }
    Ok(out)
}

/// Refuses a string the YAML writer leaves unquoted that a YAML 1.1 reader (kubectl)
/// would read as a boolean, number, null or date.
fn check_plain_strings(resources: &[Resource]) -> Result<(), String> {
    fn walk(v: &serde_json::Value) -> Result<(), String> {
        let plain_but_retyped = |s: &str| {
            super::yaml11_retyped(s)
                && matches!(
                    serde_yaml::from_str::<serde_yaml::Value>(s),
                    Ok(serde_yaml::Value::String(_))
                )
        };
        match v {
            serde_json::Value::String(s) if plain_but_retyped(s) => Err(format!(
                "`{s}` would be written unquoted and read as a boolean, number or date by kubectl: choose another value"
            )),
            serde_json::Value::Array(items) => items.iter().try_for_each(walk),
            serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
                if plain_but_retyped(k) {
                    return Err(format!(
                        "key `{k}` would be read as a boolean, number or date by kubectl: choose another name"
                    ));
                }
                walk(v)
            }),
            _ => Ok(()),
        }
    }
    for r in resources {
        walk(&serde_json::to_value(r).map_err(|e| e.to_string())?)?;
    }
    Ok(())
}

/// The values the API accepts for the fields its schema leaves as plain strings (a schema
/// check passes `completionMode: Index`; the API server would refuse it).
pub fn check_values(resources: &[Resource]) -> Result<(), String> {
    check_plain_strings(resources)?;
    fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "{what} `{value}` is not one of {}",
                allowed.join(", ")
            ))
        }
    }
    for r in resources {
        match r {
            Resource::ConfigMap(_) => {}
            Resource::Claim(c) => {
                let name = c.metadata.name.as_deref().unwrap_or("");
                for mode in c.spec.iter().flat_map(|s| s.access_modes.iter().flatten()) {
                    one_of(
                        &format!("PersistentVolumeClaim {name}: spec.accessModes"),
                        mode,
                        &[
                            "ReadWriteOnce",
                            "ReadOnlyMany",
                            "ReadWriteMany",
                            "ReadWriteOncePod",
                        ],
                    )?;
                }
            }
            Resource::Job(job) => {
                let name = job.metadata.name.as_deref().unwrap_or("");
                let at = |field: &str| format!("Job {name}: {field}");
                let Some(spec) = &job.spec else {
                    return Err(at("no spec"));
                };
                if let Some(mode) = &spec.completion_mode {
                    one_of(&at("spec.completionMode"), mode, &["NonIndexed", "Indexed"])?;
                }
                for rule in spec.pod_failure_policy.iter().flat_map(|p| &p.rules) {
                    one_of(
                        &at("spec.podFailurePolicy.rules[].action"),
                        &rule.action,
                        &["FailJob", "FailIndex", "Ignore", "Count"],
                    )?;
                    if let Some(codes) = &rule.on_exit_codes {
                        one_of(
                            &at("spec.podFailurePolicy.rules[].onExitCodes.operator"),
                            &codes.operator,
                            &["In", "NotIn"],
                        )?;
                    }
                }
                let pod = spec
                    .template
                    .spec
                    .as_ref()
                    .ok_or_else(|| at("no pod spec"))?;
                let restart = pod.restart_policy.as_deref().unwrap_or("Always");
                // A Job's pods may not restart Always; a pod failure policy needs Never.
                let allowed: &[&str] = if spec.pod_failure_policy.is_some() {
                    &["Never"]
                } else {
                    &["Never", "OnFailure"]
                };
                one_of(&at("spec.template.spec.restartPolicy"), restart, allowed)?;
                for c in &pod.containers {
                    if let Some(p) = &c.image_pull_policy {
                        one_of(
                            &at("containers[].imagePullPolicy"),
                            p,
                            &["Always", "IfNotPresent", "Never"],
                        )?;
                    }
                }
                for t in pod.topology_spread_constraints.iter().flatten() {
                    one_of(
                        &at("topologySpreadConstraints[].whenUnsatisfiable"),
                        &t.when_unsatisfiable,
                        &["DoNotSchedule", "ScheduleAnyway"],
                    )?;
                }
                if let Some(p) = pod
                    .security_context
                    .as_ref()
                    .and_then(|s| s.seccomp_profile.as_ref())
                {
                    one_of(
                        &at("securityContext.seccompProfile.type"),
                        &p.type_,
                        &["RuntimeDefault", "Localhost", "Unconfined"],
                    )?;
                }
            }
        }
    }
    Ok(())
}
