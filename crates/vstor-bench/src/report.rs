//! The Markdown report and the SVG chart of the wall-time ratios.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::callgrind::{self, Count};
use crate::kinds::Kind;
use crate::wall::Wall;

/// Goal: instructions per READ/WRITE SRB outside the copy.
pub const OTHER_GOAL: f64 = 300.0;

/// Goal for the wall-time ratio against memcpy at `bytes`.
#[must_use]
pub const fn ratio_goal(bytes: usize) -> f64 {
    if bytes <= 4096 { 1.5 } else { 1.1 }
}

/// One request kind's numbers.
pub struct Row {
    /// The kind.
    pub kind: Kind,
    /// Instructions per SRB.
    pub count: Count,
    /// Wall time per SRB.
    pub wall: Option<Wall>,
}

/// Everything one run measured.
pub struct Report {
    /// Per-SRB rows in [`crate::kinds::ALL`] order.
    pub rows: Vec<Row>,
    /// Nanoseconds per SRB of a stub `HwStartIo` that only completes it.
    pub floor_ns: f64,
    /// Adapter start time per disk size in MiB.
    pub starts: Vec<(u32, Duration)>,
    /// Size of vstor.sys in bytes.
    pub image_bytes: u64,
}

const fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

impl Report {
    /// The report as Markdown.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# vstor benchmark\n");
        let _ = writeln!(
            out,
            "Per SRB, the real vstor.sys under storemu. Instructions: callgrind, {} SRBs per kind, \
             only instructions at addresses inside the mapped image, from HwStartIo entry to \
             completion; copy = the medium's read/write and what they call (callgrind counts each \
             `rep movs` iteration as one instruction). Wall time: HwStartIo called directly on a \
             prebuilt SRB (no call gate), against glibc memcpy of the same size in the same \
             process, cache-hot, between buffers at the driver's page offsets with data on every \
             page; times are the fastest of 15 rounds, the ratio the median of the 15 rounds' \
             ratios (each round times both back to back).\n",
            callgrind::COUNT
        );
        let _ = writeln!(
            out,
            "| request | instr. total | instr. copy | instr. other | goal other ≤ {OTHER_GOAL:.0} | ns/SRB | ns memcpy | ratio | goal ratio |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---|---:|---:|---:|---|");
        for row in &self.rows {
            let bytes = row.kind.copy_bytes();
            let other_goal = if bytes > 0 {
                verdict(row.count.other() <= OTHER_GOAL).to_owned()
            } else {
                "–".to_owned()
            };
            let (ns, memcpy, ratio, ratio_goal_text) = row.wall.map_or_else(
                || {
                    (
                        "–".to_owned(),
                        "–".to_owned(),
                        "–".to_owned(),
                        "–".to_owned(),
                    )
                },
                |wall| {
                    let memcpy = wall
                        .memcpy_ns
                        .map_or_else(|| "–".to_owned(), |ns| format!("{ns:.0}"));
                    let (ratio, goal) = wall.ratio().map_or_else(
                        || ("–".to_owned(), "–".to_owned()),
                        |ratio| {
                            let goal = ratio_goal(bytes);
                            (
                                format!("{ratio:.2}×"),
                                format!("≤ {goal}×: {}", verdict(ratio <= goal)),
                            )
                        },
                    );
                    (format!("{:.0}", wall.srb_ns), memcpy, ratio, goal)
                },
            );
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} | {other_goal} | {ns} | {memcpy} | {ratio} | {ratio_goal_text} |",
                row.kind.label(),
                row.count.total,
                row.count.copy,
                row.count.other(),
            );
        }
        let _ = writeln!(
            out,
            "\nFloor: a stub HwStartIo that only completes the SRB, timed the same way, takes \
             {:.1} ns per SRB; every ns/SRB above includes it.",
            self.floor_ns
        );
        let _ = writeln!(
            out,
            "\nLargest parts of \"other\" (innermost function, inlined code included; instructions per SRB):\n"
        );
        for row in &self.rows {
            let parts: Vec<String> = row
                .count
                .top_other
                .iter()
                .map(|(name, ir)| format!("`{name}` {ir:.0}"))
                .collect();
            let _ = writeln!(out, "- {}: {}", row.kind.label(), parts.join(", "));
        }
        let _ = writeln!(out, "\n| adapter start | time |\n|---|---:|");
        for (mib, time) in &self.starts {
            let _ = writeln!(
                out,
                "| 1 disk of {mib} MiB | {:.2} ms |",
                time.as_secs_f64() * 1000.0
            );
        }
        let _ = writeln!(
            out,
            "\nvstor.sys: {} bytes ({:.1} KiB).",
            self.image_bytes,
            f64::from(u32::try_from(self.image_bytes).unwrap_or(u32::MAX)) / 1024.0
        );
        out
    }

    /// The chart of wall-time ratios, one bar per READ/WRITE kind with its
    /// goal marked.
    #[must_use]
    pub fn svg(&self) -> String {
        let bars: Vec<(&Row, f64)> = self
            .rows
            .iter()
            .filter_map(|row| Some((row, row.wall?.ratio()?)))
            .collect();
        let width = 120 + 125 * bars.len();
        let height = 320.0;
        let top = 40.0;
        let bottom = 260.0;
        let highest = bars
            .iter()
            .map(|(_, ratio)| *ratio)
            .fold(2.0_f64, f64::max)
            .ceil();
        let y = |value: f64| bottom - (bottom - top) * value / highest;
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(
            out,
            r#"<text x="10" y="20" font-size="14">vstor wall time per SRB / glibc memcpy of the same size (lower is better; dashes: goal)</text>"#
        );
        let step = if highest > 10.0 {
            (highest / 10.0).ceil()
        } else {
            0.5
        };
        for tick in (0..=20)
            .map(|index| step * f64::from(index))
            .take_while(|&tick| tick <= highest)
        {
            let _ = writeln!(
                out,
                r##"<line x1="60" x2="{}" y1="{1:.1}" y2="{1:.1}" stroke="#ddd"/><text x="50" y="{2:.1}" text-anchor="end">{tick}×</text>"##,
                width - 20,
                y(tick),
                y(tick) + 4.0
            );
        }
        for (index, (row, ratio)) in bars.iter().enumerate() {
            let x = 90 + 125 * index;
            let goal = ratio_goal(row.kind.copy_bytes());
            let colour = if *ratio <= goal { "#3a7" } else { "#d54" };
            let _ = writeln!(
                out,
                r#"<rect x="{x}" y="{:.1}" width="50" height="{:.1}" fill="{colour}"/>"#,
                y(*ratio),
                bottom - y(*ratio)
            );
            let _ = writeln!(
                out,
                r#"<line x1="{}" x2="{}" y1="{2:.1}" y2="{2:.1}" stroke="black" stroke-dasharray="4 3"/>"#,
                x - 8,
                x + 58,
                y(goal)
            );
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="middle">{ratio:.2}×</text>"#,
                x + 25,
                y(*ratio) - 5.0
            );
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x + 25,
                bottom + 18.0,
                row.kind.label()
            );
        }
        let _ = writeln!(out, "</svg>");
        out
    }

    /// Writes `report.md` and `ratios.svg` into `dir`; their paths.
    ///
    /// # Errors
    ///
    /// A sentence naming the file that could not be written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        std::fs::create_dir_all(dir)
            .map_err(|error| format!("cannot create {}: {error}.", dir.display()))?;
        let mut markdown = self.markdown();
        markdown.push_str("\n![wall-time ratios](ratios.svg)\n");
        let files = [("report.md", markdown), ("ratios.svg", self.svg())];
        let mut paths = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|error| format!("cannot write {}: {error}.", path.display()))?;
            paths.push(path);
        }
        Ok(paths)
    }
}
