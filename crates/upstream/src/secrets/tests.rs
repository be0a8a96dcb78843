use std::collections::BTreeMap;
use std::env::VarError;

use super::*;

fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes(&[n; 32])
}

fn stdio(name: &str, env: &[(&str, &str)]) -> ServerConfig {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "command": "server",
        "env": env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .unwrap()
}

fn http(name: &str, headers: &[(&str, &str)]) -> ServerConfig {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "url": "http://127.0.0.1:9/mcp",
        "headers": headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .unwrap()
}

fn no_env(_: &str) -> Result<String, VarError> {
    Err(VarError::NotPresent)
}

fn env_of(t: &Transport) -> &BTreeMap<String, String> {
    match t {
        Transport::Stdio { env, .. } => env,
        Transport::Http { headers, .. } => headers,
    }
}

#[test]
fn sealed_definitions_hold_no_plain_value_and_resolve_back() {
    let secrets = Secrets::with_key(key(1));
    let plain = stdio(
        "a",
        &[
            ("TOKEN", "hunter2"),
            ("FROM_ENV", "${env:CARGO_PKG_NAME}"),
            ("EMPTY", ""),
        ],
    );
    let sealed = secrets.seal_server(&plain).unwrap();
    let stored = serde_json::to_string(&sealed).unwrap();
    assert!(!stored.contains("hunter2"), "{stored}");
    assert!(sealed.env["TOKEN"].starts_with(&format!("enc:v1:{}:", key(1).id())));
    assert!(sealed.env["EMPTY"].starts_with("enc:v1:"));
    assert_eq!(
        sealed.env["FROM_ENV"], "${env:CARGO_PKG_NAME}",
        "kept as written"
    );
    assert!(!has_plain_values(&sealed) && has_plain_values(&plain));
    // Sealing again changes nothing: sealed values and references are kept.
    assert_eq!(secrets.seal_server(&sealed).unwrap(), sealed);

    let resolved = secrets.resolve("a", &sealed.validate().unwrap()).unwrap();
    let env = env_of(&resolved);
    assert_eq!(env["TOKEN"], "hunter2");
    assert_eq!(env["EMPTY"], "");
    assert_eq!(env["FROM_ENV"], "baton-upstream");
    // Plain values (config-file servers) pass through.
    let resolved = secrets.resolve("a", &plain.validate().unwrap()).unwrap();
    assert_eq!(env_of(&resolved)["TOKEN"], "hunter2");
}

#[test]
fn headers_are_sealed_and_checked_once_resolved() {
    let secrets = Secrets::with_key(key(1));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "two\nlines\n").unwrap();
    let config = http(
        "h",
        &[
            ("Authorization", "Bearer s3cret"),
            ("X-Bad", &format!("${{file:{}}}", bad.display())),
        ],
    );
    let sealed = secrets.seal_server(&config).unwrap();
    assert!(sealed.headers["Authorization"].starts_with("enc:v1:"));
    let e = secrets
        .resolve("h", &sealed.validate().unwrap())
        .unwrap_err();
    assert!(matches!(e, SecretsError::BadHeader { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("server `h`, header `X-Bad`"), "{msg}");
    assert!(!msg.contains("lines"), "{msg}");
}

#[test]
fn a_value_moved_to_another_server_or_key_does_not_open() {
    let secrets = Secrets::with_key(key(1));
    let a = secrets.seal_server(&stdio("a", &[("TOKEN", "x")])).unwrap();
    let mut b = stdio("b", &[("TOKEN", "y")]);
    b.env.insert("TOKEN".into(), a.env["TOKEN"].clone());
    let e = secrets.seal_server(&b).unwrap_err();
    assert!(matches!(e, SecretsError::Tampered { .. }), "{e}");
    assert!(e.to_string().contains("server `b`, env `TOKEN`"), "{e}");
    let mut renamed = a.clone();
    renamed
        .env
        .insert("OTHER".into(), renamed.env["TOKEN"].clone());
    renamed.env.remove("TOKEN");
    assert!(secrets.seal_server(&renamed).is_err());
}

#[test]
fn tampering_unknown_keys_and_malformed_values_name_server_and_key() {
    let secrets = Secrets::with_key(key(1));
    let sealed = secrets
        .seal_server(&stdio("srv", &[("TOKEN", "hunter2")]))
        .unwrap();
    let transport = |value: String| {
        let mut c = sealed.clone();
        c.env.insert("TOKEN".into(), value);
        c.validate().unwrap()
    };

    // A changed character of the ciphertext (not the last, whose low bits are padding).
    let mut value = sealed.env["TOKEN"].clone().into_bytes();
    let i = value.len() - 10;
    value[i] = if value[i] == b'A' { b'B' } else { b'A' };
    let value = String::from_utf8(value).unwrap();
    let e = secrets.resolve("srv", &transport(value)).unwrap_err();
    assert!(matches!(e, SecretsError::Tampered { .. }), "{e}");

    // Sealed by a key this process does not have.
    let other = Secrets::with_key(key(2));
    let e = other
        .resolve("srv", &transport(sealed.env["TOKEN"].clone()))
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SecretsError::UnknownKey { .. }), "{msg}");
    assert!(msg.contains("server `srv`, env `TOKEN`"), "{msg}");
    assert!(
        msg.contains(key(1).id()) && msg.contains(key(2).id()),
        "{msg}"
    );

    // Not a sealed value at all.
    let e = secrets
        .resolve("srv", &transport("enc:v1:garbage".into()))
        .unwrap_err();
    assert!(matches!(e, SecretsError::Malformed { .. }), "{e}");

    for e in [
        secrets.resolve("srv", &transport("enc:v2:x".into())),
        other.resolve("srv", &transport(sealed.env["TOKEN"].clone())),
    ] {
        assert!(!e.unwrap_err().to_string().contains("hunter2"));
    }
}

#[test]
fn unresolvable_references_name_server_key_and_reference() {
    let secrets = Secrets::without_key();
    let config = stdio("r", &[("TOKEN", "Bearer ${env:BATON_TEST_UNSET_VARIABLE}")]);
    let e = secrets
        .resolve_with("r", &config.validate().unwrap(), &no_env)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "server `r`, env `TOKEN`: cannot resolve ${env:BATON_TEST_UNSET_VARIABLE}: the variable is not set in Baton's environment"
    );
    let config = stdio("r", &[("TOKEN", "${file:/nonexistent/token}")]);
    let e = secrets
        .resolve("r", &config.validate().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("server `r`, env `TOKEN`: cannot resolve ${file:/nonexistent/token}:"),
        "{e}"
    );
    // References need no key: stored as written.
    assert_eq!(secrets.seal_server(&config).unwrap(), config);
}

#[test]
fn a_file_reference_is_read_at_each_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "one\n").unwrap();
    let secrets = Secrets::without_key();
    let transport = stdio("f", &[("TOKEN", &format!("${{file:{}}}", file.display()))])
        .validate()
        .unwrap();
    assert_eq!(
        env_of(&secrets.resolve("f", &transport).unwrap())["TOKEN"],
        "one"
    );
    std::fs::write(&file, "two").unwrap();
    assert_eq!(
        env_of(&secrets.resolve("f", &transport).unwrap())["TOKEN"],
        "two"
    );
}

#[test]
fn a_shared_store_without_a_key_refuses_plain_secrets() {
    let secrets = Secrets::new(None, &SecretsConfig::default(), StoreScope::Shared).unwrap();
    assert_eq!(secrets.key_id(), None);
    let e = secrets
        .seal_server(&stdio("p", &[("TOKEN", "hunter2")]))
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SecretsError::NoKey { .. }), "{msg}");
    assert!(
        msg.contains("server `p`, env `TOKEN`") && msg.contains(KEY_ENV),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"));
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
}

#[test]
fn a_local_store_generates_its_key_once_on_first_need() {
    let dir = tempfile::tempdir().unwrap();
    let scope = StoreScope::Local {
        data_dir: dir.path().to_path_buf(),
    };
    let path = dir.path().join(KEY_FILE);
    let secrets = Secrets::new(None, &SecretsConfig::default(), scope.clone()).unwrap();
    // References alone need no key.
    secrets
        .seal_server(&stdio("l", &[("A", "${env:HOME}")]))
        .unwrap();
    assert!(!path.exists(), "no key until a secret must be sealed");
    let sealed = secrets
        .seal_server(&stdio("l", &[("TOKEN", "hunter2")]))
        .unwrap();
    assert!(path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let id = secrets.key_id().unwrap();
    // A later process on the same data directory reads it back.
    let again = Secrets::new(None, &SecretsConfig::default(), scope.clone()).unwrap();
    assert_eq!(again.key_id(), Some(id.clone()));
    let resolved = again.resolve("l", &sealed.validate().unwrap()).unwrap();
    assert_eq!(env_of(&resolved)["TOKEN"], "hunter2");
    // A configured key seals from then on; the generated one still opens older values.
    let configured = Secrets::new(Some(key(3)), &SecretsConfig::default(), scope).unwrap();
    assert_eq!(configured.key_id().as_deref(), Some(key(3).id()));
    assert_eq!(configured.key_ids(), vec![key(3).id().to_string(), id]);
    assert!(configured.resolve("l", &sealed.validate().unwrap()).is_ok());
}

#[test]
fn key_files_are_read_and_bad_keys_refused_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let (k, text) = SecretKey::generate();
    write_key_file(&path, &text).unwrap();
    let config = SecretsConfig {
        key_file: Some(path.clone()),
    };
    let secrets = Secrets::new(None, &config, StoreScope::Shared).unwrap();
    assert_eq!(secrets.key_id().as_deref(), Some(k.id()));
    assert_eq!(read_key(&path).unwrap().id(), k.id());
    assert!(matches!(
        write_key_file(&path, &text),
        Err(SecretsError::KeyFile { .. })
    ));

    let bad = dir.path().join("bad");
    std::fs::write(&bad, "c2VjcmV0LXRleHQ=").unwrap();
    let e = Secrets::new(
        None,
        &SecretsConfig {
            key_file: Some(bad),
        },
        StoreScope::Shared,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("is not a valid secret key") && !e.contains("c2VjcmV0"),
        "{e}"
    );
    let missing = Secrets::new(
        None,
        &SecretsConfig {
            key_file: Some(dir.path().join("missing")),
        },
        StoreScope::Shared,
    )
    .unwrap_err();
    assert!(matches!(
        missing,
        SecretsError::KeyFile { action: "read", .. }
    ));
    assert_eq!(
        format!("{secrets:?}"),
        format!("Secrets {{ scope: Shared, key_ids: [{:?}] }}", k.id())
    );
}

#[test]
fn secrets_config_rejects_unknown_keys() {
    let e = serde_json::from_value::<SecretsConfig>(serde_json::json!({"keyfile": "x"}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("keyfile"), "{e}");
    let c: SecretsConfig = serde_json::from_value(serde_json::json!({})).unwrap();
    assert_eq!(c, SecretsConfig::default());
}
