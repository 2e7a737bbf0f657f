//! The solver's image config as the JSON `config` object of an OCI/Docker
//! image, with Docker's field names (what `docker inspect` shows under
//! `Config`).

use serde_json::{Map, Value, json};
use strata_solver::ImageConfig;

/// The `config` object of the image config JSON.
pub(crate) fn to_json(c: &ImageConfig) -> Value {
    let mut m = Map::new();
    let strings = |v: &[String]| Value::from(v.to_vec());
    let set = |v: &std::collections::BTreeSet<String>| {
        Value::Object(v.iter().map(|k| (k.clone(), json!({}))).collect())
    };
    m.insert("Env".into(), strings(&c.env));
    if let Some(cmd) = &c.cmd {
        m.insert("Cmd".into(), strings(cmd));
    }
    if let Some(ep) = &c.entrypoint {
        m.insert("Entrypoint".into(), strings(ep));
    }
    if !c.user.is_empty() {
        m.insert("User".into(), c.user.clone().into());
    }
    if !c.working_dir.is_empty() {
        m.insert("WorkingDir".into(), c.working_dir.clone().into());
    }
    if !c.exposed_ports.is_empty() {
        m.insert("ExposedPorts".into(), set(&c.exposed_ports));
    }
    if !c.volumes.is_empty() {
        m.insert("Volumes".into(), set(&c.volumes));
    }
    if !c.labels.is_empty() {
        m.insert(
            "Labels".into(),
            Value::Object(
                c.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into()))
                    .collect(),
            ),
        );
    }
    if let Some(s) = &c.stop_signal {
        m.insert("StopSignal".into(), s.clone().into());
    }
    if let Some(h) = &c.healthcheck {
        let mut hc = Map::new();
        hc.insert("Test".into(), strings(&h.test));
        for (k, v) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("StartInterval", h.start_interval),
        ] {
            if let Some(v) = v {
                hc.insert(k.into(), v.into());
            }
        }
        if let Some(r) = h.retries {
            hc.insert("Retries".into(), r.into());
        }
        m.insert("Healthcheck".into(), Value::Object(hc));
    }
    if !c.on_build.is_empty() {
        m.insert("OnBuild".into(), strings(&c.on_build));
    }
    if let Some(s) = &c.shell {
        m.insert("Shell".into(), strings(s));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_solver::Healthcheck;

    #[test]
    fn docker_field_names_and_shapes() {
        let mut c = ImageConfig {
            env: vec!["PATH=/bin".into()],
            cmd: Some(vec!["sh".into()]),
            user: "app".into(),
            stop_signal: Some("SIGTERM".into()),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                interval: Some(30_000_000_000),
                retries: Some(3),
                ..Healthcheck::default()
            }),
            on_build: vec!["RUN x".into()],
            ..ImageConfig::default()
        };
        c.exposed_ports.insert("80/tcp".into());
        c.volumes.insert("/data".into());
        c.labels.insert("a".into(), "b".into());
        let v = to_json(&c);
        assert_eq!(
            v,
            json!({
                "Env": ["PATH=/bin"], "Cmd": ["sh"], "User": "app", "StopSignal": "SIGTERM",
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30_000_000_000u64, "Retries": 3},
                "OnBuild": ["RUN x"], "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
                "Labels": {"a": "b"}
            })
        );
    }
}
