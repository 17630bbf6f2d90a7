//! A table of typed cells and its renderings for `report` and `export`:
//! aligned text, CSV (the `csv` crate) and an xlsx workbook
//! (`rust_xlsxwriter`). It formats what it is given and computes nothing.
//!
//! Cell types keep their meaning in every format: numbers stay numbers,
//! instants are RFC 3339 UTC in text and CSV and real Excel date-times (in
//! the desk's time zone: Excel has no zones) in xlsx, durations are seconds
//! in CSV/xlsx and `12h05m` in text.

use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Bool(bool),
    /// A share in percent (0–100), one decimal.
    Percent(f64),
    /// A duration in seconds.
    Seconds(i64),
    Date(NaiveDate),
    /// An instant, and the same instant as the desk's local time.
    Time {
        utc: DateTime<Utc>,
        local: NaiveDateTime,
    },
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn opt_text(s: Option<&str>) -> Cell {
        s.map_or(Cell::Empty, Cell::text)
    }

    pub fn opt_int(n: Option<i64>) -> Cell {
        n.map_or(Cell::Empty, Cell::Int)
    }

    pub fn opt_seconds(n: Option<i64>) -> Cell {
        n.map_or(Cell::Empty, Cell::Seconds)
    }

    pub fn opt_percent(p: Option<f64>) -> Cell {
        p.map_or(Cell::Empty, Cell::Percent)
    }

    /// How the cell reads in CSV.
    fn plain(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(n) | Cell::Seconds(n) => n.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Percent(p) => format!("{p:.1}"),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::Time { utc, .. } => utc.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }

    /// How the cell reads in the text table.
    fn human(&self) -> String {
        match self {
            Cell::Empty => "-".into(),
            Cell::Bool(b) => if *b { "yes" } else { "no" }.into(),
            Cell::Percent(p) => format!("{p:.1}%"),
            Cell::Seconds(s) => duration(*s),
            Cell::Time { utc, .. } => utc.format("%Y-%m-%d %H:%M").to_string(),
            _ => self.plain(),
        }
    }
}

/// `1h05m`, `26h00m`, `0h00m`: hours and minutes (seconds dropped).
pub fn duration(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.abs();
    format!("{sign}{}h{:02}m", s / 3600, s % 3600 / 60)
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Aligned columns, header upper-cased, numbers right-aligned.
    pub fn text(&self) -> String {
        let header: Vec<String> = self.header.iter().map(|h| h.to_uppercase()).collect();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::human).collect())
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        // Right-aligned: columns of numbers (blanks included, so a column
        // with no value yet lines up like the others).
        let numeric: Vec<bool> = (0..header.len())
            .map(|i| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|r| {
                        matches!(
                            r.get(i),
                            Some(Cell::Int(_) | Cell::Percent(_) | Cell::Seconds(_) | Cell::Empty)
                        )
                    })
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(cells.iter()) {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let w = widths.get(i).copied().unwrap_or(0);
                    if numeric.get(i).copied().unwrap_or(false) {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV with a header line.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.header)?;
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::plain))?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }

    /// One worksheet named `sheet`: bold frozen header, typed cells, column
    /// widths fitted to the content.
    pub fn write_xlsx(&self, sheet: &str, path: &Path) -> Result<(), XlsxError> {
        let mut book = Workbook::new();
        let ws = book.add_worksheet();
        ws.set_name(sheet)?;
        let bold = Format::new().set_bold();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let time = Format::new().set_num_format("yyyy-mm-dd hh:mm");
        let percent = Format::new().set_num_format("0.0");
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for (c, h) in self.header.iter().enumerate() {
            ws.write_string_with_format(0, col(c)?, h, &bold)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = u32::try_from(r + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
            for (c, cell) in row.iter().enumerate() {
                let cc = col(c)?;
                let width = match cell {
                    Cell::Empty => 0,
                    Cell::Text(s) => {
                        ws.write_string(r, cc, s)?;
                        s.chars().count()
                    }
                    Cell::Int(n) | Cell::Seconds(n) => {
                        ws.write_number(r, cc, *n as f64)?;
                        n.to_string().len()
                    }
                    Cell::Bool(b) => {
                        ws.write_boolean(r, cc, *b)?;
                        5
                    }
                    Cell::Percent(p) => {
                        ws.write_number_with_format(r, cc, *p, &percent)?;
                        5
                    }
                    Cell::Date(d) => {
                        ws.write_datetime_with_format(r, cc, excel_date(*d)?, &date)?;
                        10
                    }
                    Cell::Time { local, .. } => {
                        let t = excel_date(local.date())?.and_hms(
                            local.hour() as u16,
                            local.minute() as u8,
                            local.second(),
                        )?;
                        ws.write_datetime_with_format(r, cc, t, &time)?;
                        16
                    }
                };
                if let Some(w) = widths.get_mut(c) {
                    *w = (*w).max(width);
                }
            }
        }
        for (c, w) in widths.iter().enumerate() {
            ws.set_column_width(col(c)?, (*w).clamp(6, 60) as f64 + 2.0)?;
        }
        ws.set_freeze_panes(1, 0)?;
        book.save(path)
    }
}

fn col(c: usize) -> Result<u16, XlsxError> {
    u16::try_from(c).map_err(|_| XlsxError::RowColumnLimitError)
}

fn excel_date(d: NaiveDate) -> Result<ExcelDateTime, XlsxError> {
    let year = u16::try_from(d.year()).map_err(|_| XlsxError::DateTimeRangeError(d.to_string()))?;
    ExcelDateTime::from_ymd(year, d.month() as u8, d.day() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(duration(0), "0h00m");
        assert_eq!(duration(5400), "1h30m");
        assert_eq!(duration(93_600 + 59), "26h00m");
        assert_eq!(duration(-300), "-0h05m");
    }

    #[test]
    fn text_aligns_and_csv_quotes() {
        let mut t = Table::new(&["group", "opened"]);
        t.rows.push(vec![Cell::text("a, b"), Cell::Int(12)]);
        t.rows.push(vec![Cell::text("long group"), Cell::Int(3)]);
        assert_eq!(
            t.text(),
            "GROUP       OPENED\na, b            12\nlong group       3\n"
        );
        let mut blank = Table::new(&["group", "median"]);
        blank.rows.push(vec![Cell::text("all"), Cell::Empty]);
        assert_eq!(blank.text(), "GROUP  MEDIAN\nall         -\n");
        let csv = String::from_utf8(t.csv().unwrap()).unwrap();
        assert_eq!(csv, "group,opened\n\"a, b\",12\nlong group,3\n");
    }
}
