//! `report.html`: written by every `infersim run` (and `reproduce`), self-contained
//! (no external URL, no script), holding the numbers of `summary.csv` cell for cell,
//! the plots inline and the one-point note; then rendered by headless Chromium and
//! checked on the rendered DOM. Without Chromium the rendering part is skipped with a
//! message, unless `INFERSIM_REQUIRE_CHROMIUM` is set (CI), where it fails.

mod common;

use common::infersim_bin;
use std::path::{Path, PathBuf};

const SWEEP: &str = r#"
name = "html-sweep"
seed = 3
[hardware]
gpu = "a100-80gb"
[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 4096
[workload]
arrival = "poisson"
rate_per_s = 5.0
num_requests = 120
input_tokens = { dist = "uniform", mean = 256, range_ratio = 0.5 }
output_tokens = { dist = "lognormal", mean = 80.0, std = 30.0 }
[sweep]
"workload.rate_per_s" = [4.0, 12.0, 40.0]
"#;

/// Runs `toml` into a fresh folder: (temp dir guard, output folder).
fn run(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    std::fs::write(&file, toml).unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = infersim_bin(
        &[
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    (dir, out)
}

/// The fields of one CSV line (quotes as `summary.csv` writes them).
fn csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The cell texts of every row of the first table after `marker` (header cells
/// first).
fn table_after(html: &str, marker: &str) -> Vec<Vec<String>> {
    let start = html.find(marker).expect("marker present");
    let rest = &html[start..];
    let rest = &rest[..rest.find("</table>").expect("table closes")];
    rest.split("<tr>")
        .skip(1)
        .map(|tr| {
            let mut cells = Vec::new();
            let mut t = tr;
            while let Some(i) = t.find("<td").or_else(|| t.find("<th")) {
                let open = &t[i..];
                let body = &open[open.find('>').unwrap() + 1..];
                let close = body.find("</t").unwrap();
                cells.push(unescape(&body[..close]));
                t = &body[close..];
            }
            cells
        })
        .collect()
}

/// Every `src="..."` and `href="..."` value of the page.
fn links(html: &str) -> Vec<String> {
    let mut v = Vec::new();
    for attr in ["src=\"", "href=\"", "src='", "href='"] {
        let q = attr.chars().last().unwrap();
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            v.push(rest[..rest.find(q).unwrap_or(rest.len())].to_string());
        }
    }
    v
}

#[test]
fn report_is_self_contained_and_holds_the_summary_csv_numbers() {
    let (_g, out) = run(SWEEP);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for l in links(&html) {
        assert!(l.starts_with('#'), "a link out of the page: {l}");
    }
    for bad in ["<script", "<link", "<img", "<iframe", "@import", "url("] {
        assert!(!html.contains(bad), "report holds {bad}");
    }
    // The summary table is summary.csv's plain columns, cell for cell, row for row.
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    let head = csv_line(lines.next().unwrap());
    let body: Vec<Vec<String>> = lines.map(csv_line).collect();
    assert_eq!(body.len(), 3);
    let table = table_after(&html, "One row per run");
    let (th, td) = table.split_first().unwrap();
    assert_eq!(td.len(), body.len());
    let mut checked = 0;
    for (ci, name) in th.iter().enumerate() {
        let k = head
            .iter()
            .position(|h| h == name)
            .expect("a summary.csv column");
        for (r, row) in td.iter().enumerate() {
            assert_eq!(row[ci], body[r][k], "column {name}, row {r}");
            checked += 1;
        }
    }
    for must in ["request_throughput", "p99_ttft_ms", "output_throughput"] {
        assert!(
            th.iter().any(|h| h == must),
            "summary table lacks {must}: {th:?}"
        );
    }
    assert!(checked >= 3 * 30, "only {checked} cells compared");
    // Every plot the run wrote is inlined, byte for byte.
    for f in [
        "throughput.svg",
        "ttft.svg",
        "tpot.svg",
        "e2el.svg",
        "output_throughput.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(html.contains(svg.trim()), "{f} not inlined");
    }
    let thr = std::fs::read_to_string(out.join("throughput.svg")).unwrap();
    assert!(thr.contains("offered load (req/s)") && thr.contains("y = x"));
    for section in [
        "Set-up",
        "Summary",
        "Plots",
        "Calibration status",
        "Limits that apply",
    ] {
        assert!(html.contains(&format!("<h2>{section}</h2>")), "{section}");
    }
    // The set-up names the experiment hash the manifest holds, and the profile used
    // is listed with its status.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let hash = manifest["experiment_hash"].as_str().unwrap();
    assert!(html.contains(&format!("<td>{hash}</td>")));
    assert!(html.contains("<td>stack profile</td><td>vllm</td>"));
    assert!(html.contains("GPU part</td><td>a100-80gb</td>"));
    assert!(!html.contains("sweep points: no curve"));
    render_and_check(
        &out.join("report.html"),
        "infersim run: html-sweep",
        5,
        &[
            "Set-up",
            "Summary",
            "Plots",
            "Calibration status",
            "Limits that apply",
        ],
        &td[0][0],
    );
}

#[test]
fn a_one_point_run_says_why_it_drew_no_curve() {
    let one = SWEEP.replace("[4.0, 12.0, 40.0]", "[6.0]");
    let (_g, out) = run(&one);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("no curve was drawn"), "HTML note missing");
    let svg = std::fs::read_to_string(out.join("ttft.svg")).unwrap();
    assert!(
        svg.contains("One sweep point: no curve drawn"),
        "SVG note missing"
    );
    // Nothing swept: no plot files, and the report says why.
    let unswept = &SWEEP[..SWEEP.find("[sweep]").unwrap()];
    let (_g3, out3) = run(unswept);
    let html = std::fs::read_to_string(out3.join("report.html")).unwrap();
    assert!(html.contains("no curve was drawn"), "HTML note missing");
    assert!(!out3.join("ttft.svg").exists());
    let (_g2, out2) = run(SWEEP);
    let svg = std::fs::read_to_string(out2.join("ttft.svg")).unwrap();
    assert!(!svg.contains("no curve drawn"));
}

#[test]
fn reproduce_writes_a_report_with_every_compared_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rep");
    // The study's exit status says whether its targets are met (1: missed); the
    // report is written either way.
    let (code, _, err) = infersim_bin(
        &[
            "reproduce",
            "l4-gemma-3-1b-vllm",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(code == 0 || code == 1, "{err}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for l in links(&html) {
        assert!(l.starts_with('#'), "a link out of the page: {l}");
    }
    assert!(!html.contains("<script"));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("reproduce.json")).unwrap())
            .unwrap();
    assert!(!rows.is_empty());
    let table = table_after(&html, "One row per study");
    assert_eq!(table.len(), rows.len() + 1);
    for (r, cells) in rows.iter().zip(&table[1..]) {
        assert_eq!(cells[0], r["study"].as_str().unwrap());
        assert_eq!(cells[1], r["point"].as_str().unwrap());
        assert_eq!(cells[2], r["metric"].as_str().unwrap());
        let measured = r["measured"].as_f64().unwrap();
        let predicted = r["predicted"].as_f64().unwrap();
        assert_eq!(cells[3], format!("{measured:.3}"));
        assert_eq!(cells[4], format!("{predicted:.3}"));
        assert_eq!(
            cells[5],
            format!("{:+.1}", (predicted / measured - 1.0) * 100.0)
        );
    }
    let svgs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
        .collect();
    assert!(!svgs.is_empty(), "the study has [[plot]]s");
    for e in &svgs {
        let svg = std::fs::read_to_string(e.path()).unwrap();
        assert!(html.contains(svg.trim()));
    }
    assert!(html.contains("<td>GPU part</td><td>l4</td>"));
    render_and_check(
        &out.join("report.html"),
        "infersim reproduce",
        svgs.len(),
        &[
            "Set-up",
            "Measured against predicted",
            "Plots",
            "Calibration status",
        ],
        &table[1][2],
    );
}

/// A headless Chromium, if one is installed.
fn chromium() -> Option<PathBuf> {
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        if let Ok(out) = std::process::Command::new("which").arg(name).output() {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !p.is_empty() {
                return Some(PathBuf::from(p));
            }
        }
    }
    None
}

/// Renders `file` in headless Chromium and checks the rendered DOM: the title, the
/// number of inline SVG charts, the section headings and a table cell; and that a
/// screenshot is drawn.
fn render_and_check(file: &Path, title: &str, svgs: usize, headings: &[&str], cell: &str) {
    let Some(bin) = chromium() else {
        if std::env::var_os("INFERSIM_REQUIRE_CHROMIUM").is_some() {
            panic!("INFERSIM_REQUIRE_CHROMIUM is set but no chromium is installed");
        }
        eprintln!(
            "skipping the headless-Chromium check: no chromium found (apt-get install chromium)"
        );
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", file.display());
    let shot = profile.path().join("shot.png");
    let base = [
        "--headless".to_string(),
        "--disable-gpu".into(),
        "--no-sandbox".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.path().join("p").display()),
    ];
    let dom = std::process::Command::new(&bin)
        .args(&base)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        dom.contains(&format!("<title>{title}</title>")),
        "title not rendered"
    );
    assert_eq!(
        dom.matches("<svg").count(),
        svgs,
        "inline SVG charts in the DOM"
    );
    for h in headings {
        assert!(dom.contains(&format!("<h2>{h}</h2>")), "{h} not rendered");
    }
    assert!(
        dom.contains(&format!("<td>{cell}</td>")),
        "cell {cell} not rendered"
    );
    assert!(dom.contains("<tbody>"), "tables not parsed");
    let s = std::process::Command::new(&bin)
        .args(&base)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,3000")
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "screenshot of {} bytes: blank page?",
        png.len()
    );
}
