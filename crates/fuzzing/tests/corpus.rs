//! Replays every file of the fuzz corpus (`fuzz/corpus/<target>/`),
//! seeds and past findings alike, through its target: what `.ci/run`
//! runs of the fuzzers, on stable and in seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn every_corpus_file_reads_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut total = 0;
    for (name, target) in fuzzing::TARGETS {
        let dir = root.join(name);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() >= 3, "{name}: {} seed files", files.len());
        for f in files {
            let data = std::fs::read(&f).unwrap();
            // A panic names the file: that input is the regression test.
            eprintln!("{}", f.display());
            target(&data);
            total += 1;
        }
    }
    assert!(total >= 15);
}
