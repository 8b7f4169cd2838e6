//! The config reader (`config::load_from_str`) on arbitrary YAML with an empty environment: every
//! problem is a reported error, never a panic. Inputs that could name a `*_file` key are skipped,
//! so the fuzzer cannot make the reader open files on this machine (say `/dev/zero`); a key can
//! only be spelt with `file` in it or through a YAML escape (`\`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_authz::config::load_from_str;

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    if yaml.to_ascii_lowercase().contains("file") || yaml.contains('\\') {
        return;
    }
    let _ = load_from_str(yaml, "fuzz.yaml", Vec::new());
});
