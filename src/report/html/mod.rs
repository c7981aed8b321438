//! Self-contained HTML reports: a small builder ([`Section`], [`Block`], [`page`])
//! that escapes every piece of text, lays out sections, tables and inline SVG with
//! inline CSS, and never refers to anything outside the file (no external URL, no
//! script). [`run`] builds the report of `infersim run`, [`reproduce`] that of
//! `infersim reproduce`; another report (a `plan`) is a title and its sections
//! passed to [`page`].

pub mod reproduce;
pub mod run;
pub mod status;

/// The report's file name in an output folder.
pub const REPORT_FILE: &str = "report.html";

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by entities: safe as element text
/// and inside quoted attributes.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One piece of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A paragraph of text.
    Para(String),
    /// A highlighted note (a warning, a limit, why something is missing).
    Note(String),
    /// A bulleted list.
    List(Vec<String>),
    /// Key–value pairs, as a two-column table.
    Fields(Vec<(String, String)>),
    /// A table: caption, header cells, rows of cells (numbers right-aligned).
    Table {
        /// Caption (may be empty).
        caption: String,
        /// Header cells.
        head: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<String>>,
    },
    /// An SVG image inlined as it is (trusted: made by this program), with a caption.
    Svg {
        /// Caption.
        caption: String,
        /// The `<svg>` element text.
        svg: String,
    },
    /// Preformatted text, folded away under a summary line.
    Folded {
        /// The line shown.
        summary: String,
        /// The text.
        text: String,
    },
}

/// A titled section of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Its blocks, in order.
    pub blocks: Vec<Block>,
}

impl Section {
    /// An empty section.
    pub fn new(title: impl Into<String>) -> Self {
        Section {
            title: title.into(),
            blocks: Vec::new(),
        }
    }
    /// Adds a block.
    pub fn push(mut self, b: Block) -> Self {
        self.blocks.push(b);
        self
    }
    /// Adds a paragraph.
    pub fn para(self, text: impl Into<String>) -> Self {
        self.push(Block::Para(text.into()))
    }
    /// Adds a note.
    pub fn note(self, text: impl Into<String>) -> Self {
        self.push(Block::Note(text.into()))
    }
    /// Adds a table.
    pub fn table(
        self,
        caption: impl Into<String>,
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    ) -> Self {
        self.push(Block::Table {
            caption: caption.into(),
            head,
            rows,
        })
    }
    /// Adds an inline SVG.
    pub fn svg(self, caption: impl Into<String>, svg: impl Into<String>) -> Self {
        self.push(Block::Svg {
            caption: caption.into(),
            svg: svg.into(),
        })
    }
}

/// The page's style sheet (inline).
const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}\
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
th{background:#f0f0f0;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
caption{text-align:left;font-weight:bold;padding:.3em 0}\
.scroll{overflow-x:auto}.note{background:#fff6d6;border-left:4px solid #e0b000;padding:.4em .8em;margin:.5em 0}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{font-size:.9em;color:#555}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em}\
nav a{margin-right:1em}";

/// Whether a cell reads as a number (right-aligned).
fn numeric(s: &str) -> bool {
    !s.is_empty() && s.parse::<f64>().is_ok()
}

fn render_block(b: &Block, out: &mut String) {
    match b {
        Block::Para(t) => out.push_str(&format!("<p>{}</p>\n", escape(t))),
        Block::Note(t) => out.push_str(&format!("<p class=\"note\">{}</p>\n", escape(t))),
        Block::List(items) => {
            out.push_str("<ul>\n");
            for i in items {
                out.push_str(&format!("<li>{}</li>\n", escape(i)));
            }
            out.push_str("</ul>\n");
        }
        Block::Fields(kv) => {
            out.push_str("<table class=\"fields\">\n");
            for (k, v) in kv {
                out.push_str(&format!(
                    "<tr><th>{}</th><td>{}</td></tr>\n",
                    escape(k),
                    escape(v)
                ));
            }
            out.push_str("</table>\n");
        }
        Block::Table {
            caption,
            head,
            rows,
        } => {
            out.push_str("<div class=\"scroll\"><table>\n");
            if !caption.is_empty() {
                out.push_str(&format!("<caption>{}</caption>\n", escape(caption)));
            }
            out.push_str("<thead><tr>");
            for h in head {
                out.push_str(&format!("<th>{}</th>", escape(h)));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for r in rows {
                out.push_str("<tr>");
                for c in r {
                    if numeric(c) {
                        out.push_str(&format!("<td class=\"n\">{}</td>", escape(c)));
                    } else {
                        out.push_str(&format!("<td>{}</td>", escape(c)));
                    }
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody></table></div>\n");
        }
        Block::Svg { caption, svg } => {
            out.push_str("<figure>\n");
            out.push_str(svg.trim());
            out.push('\n');
            if !caption.is_empty() {
                out.push_str(&format!("<figcaption>{}</figcaption>\n", escape(caption)));
            }
            out.push_str("</figure>\n");
        }
        Block::Folded { summary, text } => out.push_str(&format!(
            "<details><summary>{}</summary><pre>{}</pre></details>\n",
            escape(summary),
            escape(text)
        )),
    }
}

/// A whole HTML page: `title` as `<title>` and heading, a table of contents, then
/// every section in order. The result refers to nothing outside itself.
pub fn page(title: &str, sections: &[Section]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    out.push_str("<nav>");
    for (i, s) in sections.iter().enumerate() {
        out.push_str(&format!("<a href=\"#s{i}\">{}</a>", escape(&s.title)));
    }
    out.push_str("</nav>\n");
    for (i, s) in sections.iter().enumerate() {
        out.push_str(&format!(
            "<section id=\"s{i}\">\n<h2>{}</h2>\n",
            escape(&s.title)
        ));
        for b in &s.blocks {
            render_block(b, &mut out);
        }
        out.push_str("</section>\n");
    }
    out.push_str(&format!(
        "<footer><p>Written by infersim {}.</p></footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_every_text() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        let p = page(
            "t<1>",
            &[Section::new("s&s").para("<script>").table(
                "",
                vec!["h\"".into()],
                vec![vec!["<x>".into(), "1.5".into()]],
            )],
        );
        assert!(p.contains("<title>t&lt;1&gt;</title>"));
        assert!(p.contains("<h2>s&amp;s</h2>"));
        assert!(!p.contains("<script>"));
        assert!(p.contains("<td>&lt;x&gt;</td><td class=\"n\">1.5</td>"));
        assert!(p.contains("<th>h&quot;</th>"));
    }

    #[test]
    fn inlines_svg_and_links_only_inside_the_page() {
        let p = page(
            "r",
            &[
                Section::new("a").svg("cap", "<svg width=\"1\"></svg>\n"),
                Section::new("b"),
            ],
        );
        assert!(p.contains("<figure>\n<svg width=\"1\"></svg>\n<figcaption>cap</figcaption>"));
        assert!(p.contains("<a href=\"#s0\">a</a><a href=\"#s1\">b</a>"));
        assert!(p.contains("<section id=\"s1\">"));
        assert!(!p.contains("http"));
    }
}
