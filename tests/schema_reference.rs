//! The configuration reference in README.md is the table generated from the key
//! declaration (`src/config/schema.rs`), and `infersim schema` prints that table.

mod common;

use infersim::config::schema::{key_paths, reference_table, with_reference_table};
use std::path::Path;

#[test]
fn readme_reference_table_is_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let regenerated = with_reference_table(&text).expect("README.md has the table markers");
    assert!(
        regenerated == text,
        "README.md's configuration reference differs from the key declaration; regenerate it with\n    cargo run --release -- schema --readme README.md\nand commit the result"
    );
}

#[test]
fn schema_command_prints_one_row_per_key() {
    let (code, out, err) = common::infersim_bin(&["schema"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, reference_table());
    for path in key_paths() {
        assert!(out.contains(&format!("| `{path}` |")), "{path} has no row");
    }
    // Ranges and units come from the declaration.
    assert!(out.contains("| `workload.rate_per_s` | 1e-6 to 1e6 | requests per second |"));
    assert!(out.contains("| `engine.gpu_memory_utilization` | a fraction in (0, 1] |"));
}

#[test]
fn schema_command_refuses_a_file_without_markers() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("R.md");
    std::fs::write(&f, "# no table here\n").unwrap();
    let (code, _, err) = common::infersim_bin(&["schema", "--readme", f.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("R.md") && err.contains("markers"), "{err}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "# no table here\n");
}
