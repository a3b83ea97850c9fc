//! The Markdown report and the SVG chart of vstor against the C peer.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::callgrind::{self, Count};
use crate::kinds::Kind;
use crate::wall::{self, Wall};

/// Goal for vstor's instructions over the C peer's (with its lock): outside
/// the copy for READ/WRITE, in total for the rest.
#[must_use]
pub const fn instruction_goal(kind: Kind) -> f64 {
    match kind {
        Kind::Read(_) | Kind::Write(_) => 1.25,
        Kind::TestUnitReady => 1.5,
        Kind::Inquiry => 2.0,
    }
}

/// Goal for vstor's wall time over the C peer's, where there is one
/// (READ/WRITE of 4 KiB).
#[must_use]
pub const fn wall_goal(kind: Kind) -> Option<f64> {
    match kind {
        Kind::Read(4096) | Kind::Write(4096) => Some(1.2),
        _ => None,
    }
}

/// The instructions compared for `kind`: outside the copy for a transfer,
/// all of them otherwise.
#[must_use]
pub fn compared(kind: Kind, count: &Count) -> f64 {
    if kind.copy_bytes() > 0 {
        count.other()
    } else {
        count.total
    }
}

/// One request kind's numbers.
pub struct Row {
    /// The kind.
    pub kind: Kind,
    /// Instructions per SRB of vstor.sys.
    pub vstor: Count,
    /// Of the C peer with its lock.
    pub peer: Count,
    /// Of the C peer without a lock.
    pub peer_unlocked: Count,
    /// Wall time per SRB of both.
    pub wall: Option<Wall>,
}

impl Row {
    /// vstor's instructions over the locked peer's (see [`compared`]).
    #[must_use]
    pub fn instruction_ratio(&self) -> f64 {
        compared(self.kind, &self.vstor) / compared(self.kind, &self.peer)
    }
}

/// One image's size.
pub struct ImageSize {
    /// What it is.
    pub name: String,
    /// Bytes of the file.
    pub file_bytes: u64,
    /// `SizeOfImage`.
    pub size_of_image: u64,
}

/// Everything one run measured.
pub struct Report {
    /// Per-SRB rows in [`crate::kinds::ALL`] order.
    pub rows: Vec<Row>,
    /// Nanoseconds per SRB of a stub `HwStartIo` that only completes it.
    pub floor_ns: f64,
    /// Adapter start time per disk size in MiB.
    pub starts: Vec<(u32, Duration)>,
    /// vstor.sys and the peer's images.
    pub images: Vec<ImageSize>,
    /// The driver build profile's `opt-level` (from Cargo.toml).
    pub opt_level: String,
}

const fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

impl Report {
    /// The report as Markdown.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# vstor against a C miniport\n");
        let _ = writeln!(
            out,
            "Per SRB, the real vstor.sys (profile `driver`, opt-level {}) and a minimal C Storport \
             virtual miniport (crates/vstor-bench/cpeer, mingw-w64 -O2; one RAM disk, one `rep \
             movsb` per copy, the disk's EX_SPIN_LOCK shared to read and exclusive to write) under \
             storemu, in one process. Instructions: callgrind, {} SRBs per kind, only instructions \
             inside each image from HwStartIo entry to its return; \"outside the copy\" leaves out \
             the `rep movsb` iterations, which callgrind counts one per byte; TUR and INQUIRY are \
             compared in total. Wall time: HwStartIo called directly on a prebuilt SRB, hot in \
             cache, the fastest of {} rounds for each; the ratio is the median of the rounds' \
             ratios (each round times vstor and the peer back to back).\n",
            self.opt_level,
            callgrind::COUNT,
            wall::ROUNDS,
        );
        self.table(&mut out);
        let _ = writeln!(
            out,
            "\nFloor: a stub HwStartIo that only completes the SRB, timed the same way, takes \
             {:.1} ns per SRB; every ns figure above includes it.",
            self.floor_ns
        );
        let _ = writeln!(
            out,
            "\nLargest parts of vstor's instructions outside the copy (innermost function, inlined \
             code included; instructions per SRB):\n"
        );
        for row in &self.rows {
            let parts: Vec<String> = row
                .vstor
                .top_other
                .iter()
                .map(|(name, ir)| format!("`{name}` {ir:.0}"))
                .collect();
            let _ = writeln!(out, "- {}: {}", row.kind.label(), parts.join(", "));
        }
        let _ = writeln!(
            out,
            "\n| image | file bytes | SizeOfImage |\n|---|---:|---:|"
        );
        for image in &self.images {
            let _ = writeln!(
                out,
                "| {} | {} | {} ({:.1} KiB) |",
                image.name,
                image.file_bytes,
                image.size_of_image,
                f64::from(u32::try_from(image.size_of_image).unwrap_or(u32::MAX)) / 1024.0
            );
        }
        let _ = writeln!(out, "\n| vstor adapter start | time |\n|---|---:|");
        for (mib, time) in &self.starts {
            let _ = writeln!(
                out,
                "| 1 disk of {mib} MiB | {:.2} ms |",
                time.as_secs_f64() * 1000.0
            );
        }
        out
    }

    /// The side-by-side table.
    fn table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "| request | vstor instr. | C peer + lock | C peer, no lock | vstor / C+lock | goal | vstor ns | C peer ns | wall ratio | goal |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---:|---:|---:|---|");
        for row in &self.rows {
            let what = if row.kind.copy_bytes() > 0 {
                "outside the copy"
            } else {
                "total"
            };
            let goal = instruction_goal(row.kind);
            let ratio = row.instruction_ratio();
            let (vstor_ns, peer_ns, wall_ratio, wall_verdict) = row.wall.map_or_else(
                || {
                    (
                        "–".to_owned(),
                        "–".to_owned(),
                        "–".to_owned(),
                        "–".to_owned(),
                    )
                },
                |wall| {
                    (
                        format!("{:.1}", wall.vstor_ns),
                        format!("{:.1}", wall.peer_ns),
                        format!("{:.2}×", wall.ratio),
                        wall_goal(row.kind).map_or_else(
                            || "–".to_owned(),
                            |goal| format!("≤ {goal}×: {}", verdict(wall.ratio <= goal)),
                        ),
                    )
                },
            );
            let _ = writeln!(
                out,
                "| {} ({what}) | {:.0} | {:.0} | {:.0} | {ratio:.2}× | ≤ {goal}×: {} | {vstor_ns} | {peer_ns} | {wall_ratio} | {wall_verdict} |",
                row.kind.label(),
                compared(row.kind, &row.vstor),
                compared(row.kind, &row.peer),
                compared(row.kind, &row.peer_unlocked),
                verdict(ratio <= goal),
            );
        }
    }

    /// The chart: per kind, vstor over the C peer in instructions and in
    /// wall time, with the instruction goal dashed.
    #[must_use]
    pub fn svg(&self) -> String {
        let slot = 150;
        let width = 120 + slot * self.rows.len();
        let height = 330.0;
        let top = 40.0;
        let bottom = 260.0;
        let highest = self
            .rows
            .iter()
            .flat_map(|row| {
                [
                    row.instruction_ratio(),
                    row.wall.map_or(0.0, |wall| wall.ratio),
                ]
            })
            .filter(|ratio| ratio.is_finite())
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
            r##"<text x="10" y="20" font-size="14">vstor / C peer with lock, per SRB (lower is better): <tspan fill="#37a">instructions</tspan>, <tspan fill="#a73">wall time</tspan>; dashes: instruction goal</text>"##
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
        for (index, row) in self.rows.iter().enumerate() {
            let x = 80 + slot * index;
            let bars = [
                (row.instruction_ratio(), "#37a"),
                (row.wall.map_or(f64::NAN, |wall| wall.ratio), "#a73"),
            ];
            for (bar, (ratio, colour)) in bars.into_iter().enumerate() {
                if !ratio.is_finite() {
                    continue;
                }
                let bar_x = x + 50 * bar;
                let _ = writeln!(
                    out,
                    r#"<rect x="{bar_x}" y="{:.1}" width="45" height="{:.1}" fill="{colour}"/><text x="{}" y="{:.1}" text-anchor="middle">{ratio:.2}×</text>"#,
                    y(ratio),
                    bottom - y(ratio),
                    bar_x + 22,
                    y(ratio) - 5.0
                );
            }
            let _ = writeln!(
                out,
                r#"<line x1="{}" x2="{}" y1="{2:.1}" y2="{2:.1}" stroke="black" stroke-dasharray="4 3"/>"#,
                x - 5,
                x + 100,
                y(instruction_goal(row.kind))
            );
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x + 47,
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
        markdown.push_str("\n![vstor against the C peer](ratios.svg)\n");
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
