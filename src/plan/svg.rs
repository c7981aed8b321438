//! A small hand-drawn SVG scatter plot: cost per hour on x, the highest rate meeting
//! the SLOs on y, the frontier joined in red, the winner ringed, the target dashed.
//! Written by hand (not plotters) so the bytes depend only on the numbers.

/// "Nice" tick step for a range of `span` with about 5 ticks.
fn step(span: f64) -> f64 {
    let raw = (span / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n < 1.5 {
        1.0
    } else if n < 3.5 {
        2.0
    } else if n < 7.5 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn tick(v: f64) -> String {
    format!("{}", (v * 1e6).round() / 1e6)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The plot of `pts` = (cost $/h, max rate req/s, candidate index).
pub fn scatter(
    title: &str,
    pts: &[(f64, f64, usize)],
    frontier: &[usize],
    target: Option<f64>,
    winner: Option<usize>,
) -> String {
    let (w, h, l, r, t, b) = (720.0, 480.0, 70.0, 20.0, 40.0, 60.0);
    let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max).max(1.0) * 1.05;
    let ymax = pts
        .iter()
        .map(|p| p.1)
        .chain(target)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let x = |v: f64| l + v / xmax * (w - l - r);
    let y = |v: f64| h - b - v / ymax * (h - t - b);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        w / 2.0,
        esc(title)
    );
    s += &format!(
        "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - b,
        w - r,
        h - b,
        h - b
    );
    let (xs, ys) = (step(xmax), step(ymax));
    for k in 0..=((xmax / xs).floor() as usize) {
        let v = k as f64 * xs;
        s += &format!(
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"black\"/><text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
            x(v),
            h - b,
            h - b + 5.0,
            h - b + 18.0,
            tick(v)
        );
    }
    for k in 0..=((ymax / ys).floor() as usize) {
        let v = k as f64 * ys;
        s += &format!(
            "<line x1=\"{0}\" y1=\"{1:.1}\" x2=\"{2}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"{3}\" y=\"{4:.1}\" text-anchor=\"end\">{5}</text>\n",
            l,
            y(v),
            w - r,
            l - 6.0,
            y(v) + 4.0,
            tick(v)
        );
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">cost (US$ per hour)</text>\n<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">highest rate meeting the SLOs (requests/s)</text>\n",
        (l + w - r) / 2.0,
        h - 18.0,
        (t + h - b) / 2.0,
        (t + h - b) / 2.0
    );
    if let Some(tr) = target {
        s += &format!(
            "<line x1=\"{l}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"gray\" stroke-dasharray=\"6 4\"/><text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\" fill=\"gray\">target {tr} req/s</text>\n",
            y(tr),
            w - r,
            y(tr) - 4.0
        );
    }
    let front: Vec<String> = frontier
        .iter()
        .filter_map(|i| pts.iter().find(|p| p.2 == *i))
        .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
        .collect();
    if front.len() > 1 {
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"red\" stroke-width=\"1.5\"/>\n",
            front.join(" ")
        );
    }
    for p in pts {
        let on = frontier.contains(&p.2);
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\" fill=\"{}\"><title>#{}: ${}/h, {} req/s</title></circle>\n",
            x(p.0),
            y(p.1),
            if on { 4 } else { 3 },
            if on { "red" } else { "steelblue" },
            p.2,
            p.0,
            p.1
        );
        if Some(p.2) == winner {
            s += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"8\" fill=\"none\" stroke=\"black\"/>\n",
                x(p.0),
                y(p.1)
            );
        }
    }
    if pts.is_empty() {
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no candidate was searched: nothing to plot</text>\n",
            w / 2.0,
            h / 2.0
        );
    }
    s += "</svg>\n";
    s
}
