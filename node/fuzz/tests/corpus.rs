//! Every fuzz target over its corpus (`corpus/<target>/`) and over the inputs that once crashed
//! it (`crashes/<target>/`): what the fuzzer found stays found.

use std::path::Path;

#[test]
fn every_target_takes_its_corpus_and_its_past_crashes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, target) in tierlink_fuzz::TARGETS {
        let mut inputs = 0;
        for dir in ["corpus", "crashes"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name} panicked on {}", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "{name} has no corpus in corpus/{name}/");
    }
}
