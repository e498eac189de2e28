//! Results: the median table on stdout, every run in JSON, ratios as an SVG bar chart.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use plotters::prelude::*;
use serde::Serialize;

use crate::{Cli, Measured, Row, Settings};

#[derive(Debug, Serialize)]
pub struct Summary {
    pub workload: String,
    /// (engine, median run)
    pub medians: Vec<(String, Measured)>,
    /// First engine's median ops/s over the second's.
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date_utc: String,
    pub machine: String,
    pub command: String,
    pub settings: Settings,
    pub rounds: usize,
    pub summary: Vec<Summary>,
    pub runs: Vec<Row>,
}

fn median(runs: &[Measured]) -> Option<Measured> {
    let mut v = runs.to_vec();
    v.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    v.get(v.len().saturating_sub(1) / 2).cloned()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {:.0} GiB RAM, Linux {}",
        mem as f64 / (1 << 20) as f64,
        kernel.trim()
    )
}

/// `YYYY-MM-DD HH:MM:SS` for a Unix time (UTC), without a date crate.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Report {
    pub fn new(cli: &Cli, s: &Settings, rows: Vec<Row>) -> Report {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let summary = rows
            .iter()
            .map(|r| {
                let medians: Vec<(String, Measured)> = r
                    .engines
                    .iter()
                    .filter_map(|(e, runs)| median(runs).map(|m| (e.clone(), m)))
                    .collect();
                let ratio = match medians.as_slice() {
                    [(_, a), (_, b), ..] if b.ops_per_sec > 0.0 => {
                        Some(a.ops_per_sec / b.ops_per_sec)
                    }
                    _ => None,
                };
                Summary {
                    workload: r.workload.clone(),
                    medians,
                    ratio,
                }
            })
            .collect();
        Report {
            date_utc: utc(now),
            machine: machine(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            settings: s.clone(),
            rounds: cli.rounds,
            summary,
            runs: rows,
        }
    }

    pub fn print_table(&self) {
        println!("\n{} | {}", self.date_utc, self.machine);
        println!(
            "{:<20} {:<8} {:>12} {:>9} {:>9} {:>10} {:>7} {:>7} {:>8} {:>9} {:>8}",
            "workload",
            "engine",
            "ops/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "w-amp",
            "s-amp",
            "RSS MiB",
            "anon MiB",
            "ratio"
        );
        for s in &self.summary {
            for (i, (engine, m)) in s.medians.iter().enumerate() {
                let amp = |a: Option<f64>| a.map_or("-".to_string(), |v| format!("{v:.2}"));
                let ratio = if i == 0 {
                    s.ratio.map_or("-".into(), |r| format!("{r:.2}x"))
                } else {
                    String::new()
                };
                println!(
                    "{:<20} {:<8} {:>12.0} {:>9.1} {:>9.1} {:>10.1} {:>7} {:>7} {:>8.0} {:>9.0} {:>8}",
                    if i == 0 { s.workload.as_str() } else { "" },
                    engine,
                    m.ops_per_sec,
                    m.p50_us,
                    m.p99_us,
                    m.p999_us,
                    amp(m.write_amp),
                    amp(m.space_amp),
                    m.peak_rss_mb,
                    m.peak_anon_mb,
                    ratio
                );
            }
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let stamp: String = self
            .date_utc
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect();
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        for name in [format!("{stamp}.json"), "latest.json".into()] {
            std::fs::write(dir.join(name), &json).map_err(|e| e.to_string())?;
        }
        self.chart(&dir.join(format!("{stamp}.svg")))?;
        self.chart(&dir.join("latest.svg"))?;
        println!("results: {}/{stamp}.json and .svg", dir.display());
        Ok(())
    }

    fn chart(&self, path: &Path) -> Result<(), String> {
        let bars: Vec<(&str, f64)> = self
            .summary
            .iter()
            .filter_map(|s| s.ratio.map(|r| (s.workload.as_str(), r)))
            .collect();
        let n = bars.len().max(1);
        let xmax = bars.iter().map(|b| b.1).fold(1.0f64, f64::max) * 1.15;
        let root = SVGBackend::new(path, (900, 60 + 28 * n as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("strata-kv / other engine, ops/s ({})", self.date_utc),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..xmax, 0f64..n as f64)
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = *y as usize;
                if (*y - i as f64 - 0.5).abs() < 0.01 {
                    labels.get(n - 1 - i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("ratio (> 1: strata faster)")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
                let y = (n - 1 - i) as f64;
                let color = if *r >= 1.0 {
                    GREEN.mix(0.7)
                } else {
                    RED.mix(0.7)
                };
                Rectangle::new([(0.0, y + 0.15), (*r, y + 0.85)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, 0.0), (1.0, n as f64)],
                BLACK,
            )))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}
