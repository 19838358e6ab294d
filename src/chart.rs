//! Chart rendering: a series (with its per-bucket min–max), anomaly
//! markers and a forecast band, or up to ten lines of several series, drawn
//! by plotters into an RGB buffer and encoded as PNG. Pure: the data comes in already bucketed to at most one
//! point per pixel column, so drawing costs the same for any series length.
//!
//! Text is drawn with ab_glyph from DejaVu Sans compiled in: no fontconfig
//! or system font is needed. Colours are Okabe–Ito, distinguishable under
//! the common colour-vision deficiencies, and every overlay differs in shape
//! too (line, band, ring, dashes).

use std::ops::Range;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, TimeZone, Timelike, Utc};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Okabe–Ito blue: the series.
pub const SERIES: RGBColor = RGBColor(0, 114, 178);
/// The series blue at a quarter over white (opaque, so pixels are exact).
pub const ENVELOPE: RGBColor = RGBColor(191, 220, 236);
/// Okabe–Ito vermillion: anomaly rings.
pub const ANOMALY: RGBColor = RGBColor(213, 94, 0);
/// Okabe–Ito orange: the forecast line (dashed).
pub const FORECAST: RGBColor = RGBColor(230, 159, 0);
/// The forecast orange at a quarter over white: its band.
pub const BAND: RGBColor = RGBColor(249, 231, 191);
/// Lines of a chart of several series: Okabe–Ito's seven colours on white
/// (not its yellow, too faint), then the first three again dashed.
pub const LINES: [Style; 10] = [
    Style::solid(SERIES),
    Style::solid(ANOMALY),
    Style::solid(RGBColor(0, 158, 115)),
    Style::solid(RGBColor(204, 121, 167)),
    Style::solid(FORECAST),
    Style::solid(RGBColor(86, 180, 233)),
    Style::solid(RGBColor(0, 0, 0)),
    Style::dashed(SERIES),
    Style::dashed(ANOMALY),
    Style::dashed(RGBColor(0, 158, 115)),
];
/// The line that folds the rest: grey, dashed.
pub const OTHER: Style = Style::dashed(RGBColor(136, 136, 136));
const GRID: RGBColor = RGBColor(232, 232, 232);
const INK: RGBColor = RGBColor(40, 40, 40);

/// Room for the title and legend above the plot, the tick labels and axis
/// description below it, and the value labels left of it. TOP holds one
/// legend row; each further row adds LEGEND_ROW.
const TOP: u32 = 44;
const LEGEND_ROW: u32 = 18;
const BOTTOM: u32 = 44;
const LEFT: u32 = 72;
const RIGHT: u32 = 20;

/// One drawn x position: a raw point (low = high = value) or a bucket with
/// its aggregate and its min and max. For a forecast, low and high are the
/// band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub time: DateTime<Utc>,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// How a line is stroked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    pub colour: RGBColor,
    pub dashed: bool,
}

impl Style {
    pub const fn solid(colour: RGBColor) -> Style {
        Style {
            colour,
            dashed: false,
        }
    }

    pub const fn dashed(colour: RGBColor) -> Style {
        Style {
            colour,
            dashed: true,
        }
    }
}

/// One line of a chart.
pub struct Line<'a> {
    pub points: &'a [Column],
    pub style: Style,
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Swatch {
    Line(Style),
    Envelope,
    Ring,
    Band,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub width: u32,
    pub height: u32,
    /// The zone the time axis is labelled in.
    pub offset: FixedOffset,
    /// The x range, start to end.
    pub span: (DateTime<Utc>, DateTime<Utc>),
    /// Consecutive points further apart than this are not joined: a gap in
    /// the data stays a gap on the chart.
    pub gap: TimeDelta,
    /// The first is drawn last, over the others.
    pub lines: &'a [Line<'a>],
    /// Draw the first line's min–max per column (bucketed data).
    pub envelope: bool,
    pub anomalies: &'a [(DateTime<Utc>, f64)],
    pub forecast: &'a [Column],
    pub legend: &'a [(Swatch, String)],
}

/// Where the plot lies in the image, in pixels (inclusive), so a client can
/// map times and values to positions.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct PlotArea {
    pub left: i32,
    pub right: i32,
    pub top: i32,
    pub bottom: i32,
}

pub struct Rendered {
    pub png: Vec<u8>,
    pub plot: PlotArea,
}

/// How many columns the plot has at this image width: the most buckets a
/// chart of this width draws.
pub fn columns(width: u32) -> u32 {
    width.saturating_sub(LEFT + RIGHT).max(1)
}

/// The time axis in milliseconds, with ticks on round local times.
struct TimeAxis {
    start: i64,
    end: i64,
    ticks: Vec<i64>,
}

impl Ranged for TimeAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = i64;

    fn map(&self, v: &i64, (lo, hi): (i32, i32)) -> i32 {
        let share = (*v - self.start) as f64 / (self.end - self.start).max(1) as f64;
        lo + (share * f64::from(hi - lo)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<i64> {
        let every = self
            .ticks
            .len()
            .div_ceil(hint.max_num_points().max(1))
            .max(1);
        self.ticks.iter().step_by(every).copied().collect()
    }

    fn range(&self) -> Range<i64> {
        self.start..self.end
    }
}

// Labels come from `x_label_formatter`; plotters asks for a fallback.
impl ValueFormatter<i64> for TimeAxis {
    fn format(v: &i64) -> String {
        v.to_string()
    }
}

/// A tick spacing: a fixed number of seconds, or whole months.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Seconds(i64),
    Months(u32),
}

const STEPS: [Step; 27] = [
    Step::Seconds(1),
    Step::Seconds(2),
    Step::Seconds(5),
    Step::Seconds(10),
    Step::Seconds(15),
    Step::Seconds(30),
    Step::Seconds(60),
    Step::Seconds(120),
    Step::Seconds(300),
    Step::Seconds(600),
    Step::Seconds(900),
    Step::Seconds(1800),
    Step::Seconds(3600),
    Step::Seconds(7200),
    Step::Seconds(10_800),
    Step::Seconds(21_600),
    Step::Seconds(43_200),
    Step::Seconds(86_400),
    Step::Seconds(172_800),
    Step::Seconds(604_800),
    Step::Months(1),
    Step::Months(2),
    Step::Months(3),
    Step::Months(6),
    Step::Months(12),
    Step::Months(60),
    Step::Months(120),
];

impl Step {
    fn approx_seconds(self) -> i64 {
        match self {
            Step::Seconds(s) => s,
            Step::Months(m) => i64::from(m) * 2_629_746,
        }
    }

    /// The ticks in `[start, end]`, on multiples of the step in local time.
    fn ticks(self, start: DateTime<Utc>, end: DateTime<Utc>, offset: FixedOffset) -> Vec<i64> {
        let mut out = Vec::new();
        match self {
            Step::Seconds(s) => {
                let shift = i64::from(offset.local_minus_utc());
                let local = start.timestamp() + shift;
                let mut t = (local.div_euclid(s) + 1) * s - shift;
                while t <= end.timestamp() && out.len() < 500 {
                    out.push(t * 1000);
                    t += s;
                }
            }
            Step::Months(m) => {
                let local = start.with_timezone(&offset);
                let mut month = local.year() * 12 + local.month0() as i32;
                month = (month.div_euclid(m as i32) + 1) * m as i32;
                while out.len() < 500 {
                    let Some(t) = offset
                        .with_ymd_and_hms(
                            month.div_euclid(12),
                            month.rem_euclid(12) as u32 + 1,
                            1,
                            0,
                            0,
                            0,
                        )
                        .single()
                    else {
                        break;
                    };
                    if t.with_timezone(&Utc) > end {
                        break;
                    }
                    out.push(t.timestamp_millis());
                    month += m as i32;
                }
            }
        }
        out
    }

    /// A label short enough to fit; the axis description carries the zone
    /// and the full range.
    fn label(self, t: DateTime<FixedOffset>) -> String {
        let midnight = t.hour() == 0 && t.minute() == 0 && t.second() == 0;
        match self {
            Step::Seconds(s) if s < 60 => t.format("%H:%M:%S").to_string(),
            Step::Seconds(s) if s < 86_400 && !midnight => t.format("%H:%M").to_string(),
            Step::Seconds(_) => t.format("%b %d").to_string(),
            Step::Months(m) if m < 12 => t.format("%b %Y").to_string(),
            Step::Months(_) => t.format("%Y").to_string(),
        }
    }
}

/// The finest step that leaves about 90 pixels per label.
fn step_for(span_seconds: i64, columns: u32) -> Step {
    let most = i64::from((columns / 90).max(2));
    STEPS
        .into_iter()
        .find(|s| span_seconds / s.approx_seconds() <= most)
        .unwrap_or(Step::Months(1200))
}

/// `UTC` or `UTC+05:30`.
pub fn zone_name(offset: FixedOffset) -> String {
    match offset.local_minus_utc() {
        0 => "UTC".into(),
        _ => format!("UTC{offset}"),
    }
}

/// The value range with a little air, never empty.
fn value_range(chart: &Chart) -> Range<f64> {
    let values = chart
        .lines
        .iter()
        .flat_map(|l| l.points)
        .chain(chart.forecast)
        .flat_map(|c| [c.low, c.high, c.value])
        .chain(chart.anomalies.iter().map(|a| a.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else {
        lo.abs().max(1.0) * 0.1
    };
    (lo - pad)..(hi + pad)
}

/// Few significant decimals: enough to tell neighbouring ticks apart.
fn value_label(v: f64, step: f64) -> String {
    let decimals = if step > 0.0 {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-4) {
        format!("{v:.2e}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// Three significant digits, for a legend.
pub fn short(v: f64) -> String {
    let magnitude = if v == 0.0 {
        0.0
    } else {
        v.abs().log10().floor()
    };
    let decimals = (2.0 - magnitude).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// Splits points where they are further apart than `gap`.
fn runs(points: &[Column], gap: TimeDelta) -> Vec<&[Column]> {
    let mut out = Vec::new();
    let mut from = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].time - points[i - 1].time > gap {
            out.push(&points[from..i]);
            from = i;
        }
    }
    out
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn render(chart: &Chart) -> Result<Rendered, String> {
    let font = font()?;
    let (w, h) = (chart.width, chart.height);
    let len = (w as usize)
        .checked_mul(h as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or("image too large")?;
    let mut canvas = Canvas {
        rgb: vec![255u8; len],
        width: w,
        height: h,
    };
    let (plot, texts) =
        draw(chart, font, &mut canvas).map_err(|e| format!("drawing failed: {e}"))?;
    for text in &texts {
        canvas.text(font, text);
    }
    Ok(Rendered {
        png: encode(&canvas.rgb, w, h)?,
        plot,
    })
}

fn encode(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, String> {
    let mut png = Vec::with_capacity(rgb.len() / 8);
    let mut encoder = png::Encoder::new(&mut png, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Flat colours compress well even at the fast setting.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(png)
}

/// The embedded font, parsed once per process.
fn font() -> Result<&'static FontRef<'static>, String> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(dejavu::sans::regular()).ok())
        .as_ref()
        .ok_or_else(|| "the embedded font could not be read".to_owned())
}

/// Where a text's reference point is: its left, centre or right edge, and
/// its top or middle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Anchor {
    LeftTop,
    CentreTop,
    RightMiddle,
    LeftMiddle,
}

struct Text {
    at: (i32, i32),
    anchor: Anchor,
    size: f32,
    text: String,
    colour: RGBColor,
}

fn measure(font: &FontRef<'static>, size: f32, text: &str) -> f32 {
    let scaled = font.as_scaled(PxScale::from(size));
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        prev = Some(id);
    }
    width
}

/// The RGB buffer, for text drawn after plotters is done with it.
/// (plotters' own ab_glyph text drops each glyph's side bearing, which
/// crowds digits such as "1".)
struct Canvas {
    rgb: Vec<u8>,
    width: u32,
    height: u32,
}

impl Canvas {
    fn blend(&mut self, x: i32, y: i32, colour: RGBColor, coverage: f32) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let at = (y as usize * self.width as usize + x as usize) * 3;
        let a = coverage.clamp(0.0, 1.0);
        for (i, c) in [colour.0, colour.1, colour.2].into_iter().enumerate() {
            let old = f32::from(self.rgb[at + i]);
            self.rgb[at + i] = (old + (f32::from(c) - old) * a).round() as u8;
        }
    }

    fn text(&mut self, font: &FontRef<'static>, t: &Text) {
        let scale = PxScale::from(t.size);
        let scaled = font.as_scaled(scale);
        let width = measure(font, t.size, &t.text);
        let (ascent, descent) = (scaled.ascent(), scaled.descent());
        let x = match t.anchor {
            Anchor::LeftTop | Anchor::LeftMiddle => t.at.0 as f32,
            Anchor::CentreTop => t.at.0 as f32 - width / 2.0,
            Anchor::RightMiddle => t.at.0 as f32 - width,
        };
        let baseline = match t.anchor {
            Anchor::LeftTop | Anchor::CentreTop => t.at.1 as f32 + ascent,
            Anchor::RightMiddle | Anchor::LeftMiddle => t.at.1 as f32 + (ascent + descent) / 2.0,
        };
        let mut pen = x.round();
        let mut prev = None;
        for c in t.text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(scale, point(pen, baseline.round()));
            pen += scaled.h_advance(id);
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                let (bx, by) = (b.min.x as i32, b.min.y as i32);
                outline.draw(|gx, gy, coverage| {
                    self.blend(bx + gx as i32, by + gy as i32, t.colour, coverage);
                });
            }
        }
    }
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn draw(
    chart: &Chart,
    font: &FontRef<'static>,
    canvas: &mut Canvas,
) -> DrawResult<(PlotArea, Vec<Text>)> {
    let (start, end) = chart.span;
    let root = BitMapBackend::with_buffer(&mut canvas.rgb, (chart.width, chart.height))
        .into_drawing_area();
    let span_seconds = (end - start).num_seconds().max(1);
    let step = step_for(span_seconds, columns(chart.width));
    let axis = TimeAxis {
        start: ms(start),
        end: ms(end).max(ms(start) + 1),
        ticks: step.ticks(start, end, chart.offset),
    };
    let x_ticks = axis.ticks.clone();
    let values = value_range(chart);
    let y_coord: RangedCoordf64 = values.clone().into();
    let y_ticks = y_coord.key_points(7usize);
    let y_step = match y_ticks.as_slice() {
        [a, b, ..] => b - a,
        _ => values.end - values.start,
    };
    let placed = legend_layout(font, chart.legend, chart.width);
    let rows = placed.iter().map(|p| p.1).max().map_or(1, |r| r + 1);
    let built = ChartBuilder::on(&root)
        .margin_top(TOP + LEGEND_ROW * (rows - 1))
        .margin_right(RIGHT)
        .x_label_area_size(BOTTOM)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(axis, values.clone())?;
    let (xs, ys) = built.plotting_area().get_pixel_range();
    let plot = PlotArea {
        left: xs.start,
        right: xs.end - 1,
        top: ys.start,
        bottom: ys.end - 1,
    };
    let mut texts = Vec::new();
    let label = |at, anchor, text| Text {
        at,
        anchor,
        size: 12.0,
        text,
        colour: INK,
    };

    // The grid and axes, with labels placed where plotters maps the ticks.
    for t in &x_ticks {
        let (px, _) = built.backend_coord(&(*t, values.start));
        root.draw(&PathElement::new(
            vec![(px, plot.top), (px, plot.bottom)],
            GRID,
        ))?;
        let tick = DateTime::from_timestamp_millis(*t)
            .map(|t| step.label(t.with_timezone(&chart.offset)))
            .unwrap_or_default();
        texts.push(label((px, plot.bottom + 6), Anchor::CentreTop, tick));
    }
    for v in &y_ticks {
        let (_, py) = built.backend_coord(&(ms(start), *v));
        root.draw(&PathElement::new(
            vec![(plot.left, py), (plot.right, py)],
            GRID,
        ))?;
        texts.push(label(
            (plot.left - 6, py),
            Anchor::RightMiddle,
            value_label(*v, y_step),
        ));
    }
    root.draw(&PathElement::new(
        vec![
            (plot.left, plot.top),
            (plot.left, plot.bottom),
            (plot.right, plot.bottom),
        ],
        INK,
    ))?;
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&chart.offset)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    texts.push(label(
        ((plot.left + plot.right) / 2, plot.bottom + 24),
        Anchor::CentreTop,
        format!(
            "{} → {} ({})",
            local(start),
            local(end),
            zone_name(chart.offset)
        ),
    ));
    texts.push(Text {
        at: (plot.left, 6),
        anchor: Anchor::LeftTop,
        size: 14.0,
        text: chart.title.to_owned(),
        colour: BLACK,
    });

    let mut built = built;
    let first_line = chart.lines.first().map_or(&[][..], |l| l.points);
    if chart.envelope {
        built.draw_series(first_line.iter().filter(|c| c.high > c.low).map(|c| {
            PathElement::new(vec![(ms(c.time), c.low), (ms(c.time), c.high)], ENVELOPE)
        }))?;
    }
    if let Some(first) = chart.forecast.first() {
        // The band starts from the last observed point, so the eye follows on.
        let joined: Vec<Column> = first_line
            .last()
            .map(|last| Column {
                low: last.value,
                high: last.value,
                ..*last
            })
            .filter(|last| last.time < first.time)
            .into_iter()
            .chain(chart.forecast.iter().copied())
            .collect();
        let mut outline: Vec<(i64, f64)> = joined.iter().map(|c| (ms(c.time), c.high)).collect();
        outline.extend(joined.iter().rev().map(|c| (ms(c.time), c.low)));
        built.draw_series(std::iter::once(Polygon::new(outline, BAND.filled())))?;
        built.draw_series(DashedLineSeries::new(
            joined.iter().map(|c| (ms(c.time), c.value)),
            8,
            5,
            FORECAST.stroke_width(2),
        ))?;
    }
    for line in chart.lines.iter().rev() {
        let colour = line.style.colour;
        for run in runs(line.points, chart.gap) {
            let xy = run.iter().map(|c| (ms(c.time), c.value));
            match run {
                [only] => built.draw_series(std::iter::once(Circle::new(
                    (ms(only.time), only.value),
                    2,
                    colour.filled(),
                )))?,
                _ if line.style.dashed => {
                    built.draw_series(DashedLineSeries::new(xy, 8, 5, colour.stroke_width(2)))?
                }
                _ => built.draw_series(LineSeries::new(xy, colour.stroke_width(2)))?,
            };
        }
    }
    built.draw_series(
        chart
            .anomalies
            .iter()
            .map(|(t, v)| Circle::new((ms(*t), *v), 6, ANOMALY.stroke_width(2))),
    )?;
    legend(&root, chart.legend, &placed, &mut texts)?;
    root.present()?;
    Ok((plot, texts))
}

/// Where each legend entry goes: its x and its row, rows wrapped to the
/// image's width (a chart of several series has up to ten entries).
fn legend_layout(
    font: &FontRef<'static>,
    entries: &[(Swatch, String)],
    width: u32,
) -> Vec<(i32, u32)> {
    let (left, right) = (LEFT as i32, width.saturating_sub(RIGHT) as i32);
    let (mut x, mut row) = (left, 0);
    entries
        .iter()
        .map(|(_, text)| {
            let w = 24 + measure(font, 12.0, text).ceil() as i32;
            if x > left && x + w > right {
                (x, row) = (left, row + 1);
            }
            let at = (x, row);
            x += w + 18;
            at
        })
        .collect()
}

/// Rows of entries under the title, above the plot (never over data).
fn legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(Swatch, String)],
    placed: &[(i32, u32)],
    texts: &mut Vec<Text>,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    for ((swatch, text), &(x, row)) in entries.iter().zip(placed) {
        let mid = 33 + (LEGEND_ROW * row) as i32;
        let (top, bottom) = (mid - 6, mid + 6);
        match swatch {
            Swatch::Line(style) if style.dashed => {
                for dx in [0, 11] {
                    root.draw(&PathElement::new(
                        vec![(x + dx, mid), (x + dx + 7, mid)],
                        style.colour.stroke_width(2),
                    ))?;
                }
            }
            Swatch::Line(style) => root.draw(&PathElement::new(
                vec![(x, mid), (x + 18, mid)],
                style.colour.stroke_width(2),
            ))?,
            Swatch::Envelope => root.draw(&Rectangle::new(
                [(x, top), (x + 18, bottom)],
                ENVELOPE.filled(),
            ))?,
            Swatch::Band => {
                root.draw(&Rectangle::new([(x, top), (x + 18, bottom)], BAND.filled()))?
            }
            Swatch::Ring => root.draw(&Circle::new((x + 9, mid), 5, ANOMALY.stroke_width(2)))?,
        }
        texts.push(Text {
            at: (x + 24, mid),
            anchor: Anchor::LeftMiddle,
            size: 12.0,
            text: text.clone(),
            colour: INK,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ticks_fall_on_round_local_times() {
        let (start, end) = (at("2026-11-25T10:07:00Z"), at("2026-11-25T16:00:00Z"));
        let step = step_for((end - start).num_seconds(), columns(1000));
        assert_eq!(step, Step::Seconds(3600));
        let plus = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        let ticks = step.ticks(start, end, plus);
        let first = DateTime::from_timestamp_millis(ticks[0]).unwrap();
        assert_eq!(step.label(first.with_timezone(&plus)), "16:00");
        let months = Step::Months(3).ticks(
            at("2025-02-10T00:00:00Z"),
            at("2026-01-01T00:00:00Z"),
            FixedOffset::east_opt(0).unwrap(),
        );
        let labels: Vec<String> = months
            .iter()
            .map(|t| {
                Step::Months(3).label(DateTime::from_timestamp_millis(*t).unwrap().fixed_offset())
            })
            .collect();
        assert_eq!(labels, ["Apr 2025", "Jul 2025", "Oct 2025", "Jan 2026"]);
    }

    #[test]
    fn legend_numbers_keep_three_digits() {
        assert_eq!(
            [short(1.897209), short(0.012345), short(250.0), short(0.0)],
            ["1.90", "0.0123", "250", "0.00"]
        );
    }

    #[test]
    fn gaps_split_the_line() {
        let c = |s: &str| Column {
            time: at(s),
            value: 1.0,
            low: 1.0,
            high: 1.0,
        };
        let points = [
            c("2026-01-01T00:00:00Z"),
            c("2026-01-01T00:01:00Z"),
            c("2026-01-01T01:00:00Z"),
        ];
        let split = runs(&points, TimeDelta::minutes(5));
        assert_eq!(split.iter().map(|r| r.len()).collect::<Vec<_>>(), [2, 1]);
    }
}
