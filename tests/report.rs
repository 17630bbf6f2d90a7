//! `postdesk report` and `postdesk export` (SPEC §9) on a desk seeded through
//! the real ingest and `ticket update` paths at fixed `--now` instants, with
//! the answers worked out by hand below: every grouping in every format, and
//! the xlsx files opened by a real reader (openpyxl).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Desk, base_config, mail};
use serde_json::Value;

/// Desk in Madrid; the "problema" policy runs on office hours (Mon–Fri
/// 09:00–18:00 local = 08:00–17:00 UTC in November), "general" on 24x7.
fn config() -> String {
    let base = base_config("").replace("[desk]\n", "[desk]\ntimezone = \"Europe/Madrid\"\n");
    format!(
        r#"{base}
[duplicates]
enabled = false

[[agents]]
name = "Marta"
email = "marta@example.com"

[[customers]]
name = "Otra SL"
domains = ["otra.com"]

[[rules]]
subject = "(?i)factura"
set = {{ queue = "billing", type = "problem", priority = "high" }}

[calendars.oficina]
timezone = "Europe/Madrid"
mon = "09:00-18:00"
tue = "09:00-18:00"
wed = "09:00-18:00"
thu = "09:00-18:00"
fri = "09:00-18:00"

[[sla]]
name = "problema"
match = {{ type = "problem" }}
calendar = "oficina"
first_response = "4h"
resolution = "24h"

[[sla]]
name = "general"
first_response = "24h"
resolution = "72h"
"#
    )
}

/// The instant every report and export is asked at.
const NOW: &str = "2026-12-02T12:00:00Z";

struct Seed {
    desk: Desk,
    mails: usize,
}

impl Seed {
    /// A customer mail opening a ticket at `now`.
    fn customer(&mut self, now: &str, from: &str, subject: &str) {
        self.mails += 1;
        let id = format!("m{}@{}", self.mails, from.split('@').nth(1).unwrap_or("x"));
        let raw = mail(from, subject, &id, "", &format!("Texto {}", self.mails));
        self.ingest(now, &raw);
    }

    /// A mail threaded onto ticket `ticket` by its tag, at `now`.
    fn reply(&mut self, now: &str, from: &str, ticket: i64, body: &str) {
        self.mails += 1;
        let id = format!("r{}@example.com", self.mails);
        let subject = format!("RE: consulta [Ticket: {ticket}]");
        self.ingest(now, &mail(from, &subject, &id, "", body));
    }

    fn ingest(&self, now: &str, raw: &[u8]) {
        let file = self.desk.path(&format!("seed-{}.eml", self.mails));
        std::fs::write(&file, raw).expect("write mail");
        let path = file.to_str().expect("utf-8 path");
        self.desk.ok(&["--now", now, "ingest", path]);
    }

    fn update(&self, now: &str, ticket: i64, args: &[&str]) {
        let id = ticket.to_string();
        let mut all = vec!["--now", now, "ticket", "update", &id];
        all.extend_from_slice(args);
        self.desk.ok(&all);
    }
}

const LUIS: &str = "luis@example.com";
const MARTA: &str = "marta@example.com";

/// Eight tickets; what each contributes to November 2026 (Madrid):
///
/// | # | policy   | customer     | agent | FR (s) / outcome | resolution (s) / outcome | other |
/// |---|----------|--------------|-------|------------------|--------------------------|-------|
/// | 1 | problema | Cliente S.A. | luis  | 5400 met         | 32400 met                | closed |
/// | 2 | problema | Cliente S.A. | luis  | 21600 missed     | 46800 met (waited 1 day) | |
/// | 3 | problema | Otra SL      | marta | – missed         | – missed                 | backlog |
/// | 4 | general  | Cliente S.A. | luis  | 7200 met         | 86400 met                | 1 follow-up |
/// | 5 | general  | –            | –     | –                | –                        | cancelled |
/// | 6 | general  | Otra SL      | marta | 93600 missed     | 345600 missed            | low |
/// | 7 | general  | Cliente S.A. | –     | (due in Dec)     | –                        | urgent, backlog |
/// | 8 | general  | Cliente S.A. | luis  | (in October)     | 604800 (missed in Oct)   | opened in Oct |
fn seeded() -> Desk {
    let mut s = Seed {
        desk: Desk::with_config(&config()),
        mails: 0,
    };
    // Numbers follow creation: the October ticket is created last, with an
    // earlier --now, so the November ones keep their numbers 1..7.
    // 1: Monday 2 Nov 10:00 local.
    s.customer(
        "2026-11-02T09:00:00Z",
        "ana@cliente.com",
        "Factura duplicada",
    );
    s.update("2026-11-02T09:05:00Z", 1, &["--assign", LUIS]);
    s.reply("2026-11-02T10:30:00Z", LUIS, 1, "Lo miramos.");
    s.update("2026-11-03T09:00:00Z", 1, &["--status", "resolved"]);
    s.update("2026-11-10T10:00:00Z", 1, &["--status", "closed"]);
    // 2: Tuesday 3 Nov, office opening; answered 6 working hours later,
    // waiting 15:00 – next day 10:00 (paused), resolved 16:00.
    s.customer("2026-11-03T08:00:00Z", "bob@cliente.com", "Factura sin IVA");
    s.update("2026-11-03T08:05:00Z", 2, &["--assign", LUIS]);
    s.reply("2026-11-03T14:00:00Z", LUIS, 2, "Necesito el número.");
    s.update("2026-11-03T15:00:00Z", 2, &["--status", "waiting"]);
    s.update("2026-11-04T10:00:00Z", 2, &["--status", "open"]);
    s.update("2026-11-04T16:00:00Z", 2, &["--status", "resolved"]);
    // 3: Wednesday 4 Nov 17:00 local, never answered: first response due
    // Thu 5 11:00Z, resolution due Mon 9 13:00Z, both missed, still open.
    s.customer("2026-11-04T16:00:00Z", "carla@otra.com", "Factura vencida");
    s.update("2026-11-04T16:05:00Z", 3, &["--assign", MARTA]);
    // 4: answered in 2 h, a follow-up, resolved after 24 h.
    s.customer("2026-11-09T10:00:00Z", "dan@cliente.com", "Consulta acceso");
    s.update("2026-11-09T10:05:00Z", 4, &["--assign", LUIS]);
    s.reply("2026-11-09T12:00:00Z", LUIS, 4, "Prueba de nuevo.");
    s.reply(
        "2026-11-09T13:00:00Z",
        "dan@cliente.com",
        4,
        "Sigue sin ir.",
    );
    s.update("2026-11-10T10:00:00Z", 4, &["--status", "resolved"]);
    // 5: no customer, cancelled after an hour.
    s.customer("2026-11-10T10:00:00Z", "eva@gmail.com", "Pregunta horario");
    s.update("2026-11-10T11:00:00Z", 5, &["--status", "cancelled"]);
    // 6: answered after 26 h, resolved after 96 h: both missed.
    s.customer("2026-11-16T10:00:00Z", "fer@otra.com", "Impresora rota");
    s.update(
        "2026-11-16T10:05:00Z",
        6,
        &["--assign", MARTA, "--priority", "low"],
    );
    s.reply("2026-11-17T12:00:00Z", MARTA, 6, "Vamos mañana.");
    s.update("2026-11-20T10:00:00Z", 6, &["--status", "resolved"]);
    // 7: Monday 30 Nov, open at the end of the month, nothing due yet in November.
    s.customer("2026-11-30T10:00:00Z", "gil@cliente.com", "Alta usuario");
    s.update("2026-11-30T10:05:00Z", 7, &["--priority", "urgent"]);
    // 8: opened in October, answered in October, resolved on 2 Nov after 7 days.
    s.customer("2026-10-26T10:00:00Z", "hal@cliente.com", "Consulta vieja");
    s.update("2026-10-26T10:05:00Z", 8, &["--assign", LUIS]);
    s.reply("2026-10-26T11:00:00Z", LUIS, 8, "Miramos.");
    s.update("2026-11-02T10:00:00Z", 8, &["--status", "resolved"]);
    s.desk
}

/// What one report row must say.
#[derive(Clone, Copy)]
struct Expect {
    group: &'static str,
    /// opened, resolved, closed, cancelled, backlog, first responses.
    counts: [u64; 6],
    /// First-response working seconds: median, p90.
    first_response: Option<(i64, i64)>,
    /// Resolution working seconds: median, p90.
    resolution: Option<(i64, i64)>,
    /// First-response deadlines met, missed, compliance %.
    first_response_sla: (u64, u64, Option<f64>),
    resolution_sla: (u64, u64, Option<f64>),
}

impl Expect {
    const fn named(self, group: &'static str) -> Expect {
        Expect { group, ..self }
    }

    /// The row as CSV cells, without the period columns.
    fn cells(&self) -> Vec<String> {
        let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
        let pct = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
        let mut out = vec![self.group.to_string()];
        out.extend(self.counts.iter().map(u64::to_string));
        out.extend([
            opt(self.first_response.map(|t| t.0)),
            opt(self.first_response.map(|t| t.1)),
            opt(self.resolution.map(|t| t.0)),
            opt(self.resolution.map(|t| t.1)),
            self.first_response_sla.0.to_string(),
            self.first_response_sla.1.to_string(),
            pct(self.first_response_sla.2),
            self.resolution_sla.0.to_string(),
            self.resolution_sla.1.to_string(),
            pct(self.resolution_sla.2),
        ]);
        out
    }

    /// The row as the text table shows it.
    fn human(&self) -> Vec<String> {
        let dur = |v: Option<i64>| {
            v.map_or("-".into(), |s| {
                format!("{}h{:02}m", s / 3600, s % 3600 / 60)
            })
        };
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}%"));
        let mut out = vec![self.group.to_string()];
        out.extend(self.counts.iter().map(u64::to_string));
        out.extend([
            dur(self.first_response.map(|t| t.0)),
            dur(self.first_response.map(|t| t.1)),
            dur(self.resolution.map(|t| t.0)),
            dur(self.resolution.map(|t| t.1)),
            self.first_response_sla.0.to_string(),
            self.first_response_sla.1.to_string(),
            pct(self.first_response_sla.2),
            self.resolution_sla.0.to_string(),
            self.resolution_sla.1.to_string(),
            pct(self.resolution_sla.2),
        ]);
        out
    }
}

/// All of November. First responses 5400, 7200, 21600, 93600 s: median
/// (7200 + 21600) / 2, p90 at rank 2.7 = 21600 + 0.7 × 72000. Resolutions
/// 32400, 46800, 86400, 345600, 604800 s: p90 at rank 3.6 = 345600 + 0.6 ×
/// 259200. First response met by 1 and 4, missed by 2, 3, 6; resolution met
/// by 1, 2, 4, missed by 3, 6 (8's was missed in October).
const TOTAL: Expect = Expect {
    group: "(total)",
    counts: [7, 5, 1, 1, 2, 4],
    first_response: Some((14400, 72000)),
    resolution: Some((86400, 501120)),
    first_response_sla: (2, 3, Some(40.0)),
    resolution_sla: (3, 2, Some(60.0)),
};

/// Tickets 1–3: billing queue, type problem, priority high (by the rule).
const BILLING: Expect = Expect {
    group: "billing",
    counts: [3, 2, 1, 0, 1, 2],
    first_response: Some((13500, 19980)),
    resolution: Some((39600, 45360)),
    first_response_sla: (1, 2, Some(33.3)),
    resolution_sla: (2, 1, Some(66.7)),
};

/// Tickets 4–8: general queue, no type.
const GENERAL: Expect = Expect {
    group: "general",
    counts: [4, 3, 0, 1, 1, 2],
    first_response: Some((50400, 84960)),
    resolution: Some((345600, 552960)),
    first_response_sla: (1, 1, Some(50.0)),
    resolution_sla: (1, 1, Some(50.0)),
};

/// Tickets 1, 2, 4, 8 (Luis) — and, with 7 opened but unanswered, Cliente S.A.
const LUIS_ROW: Expect = Expect {
    group: LUIS,
    counts: [3, 4, 1, 0, 0, 3],
    first_response: Some((7200, 18720)),
    resolution: Some((66600, 449280)),
    first_response_sla: (2, 1, Some(66.7)),
    resolution_sla: (3, 0, Some(100.0)),
};

/// Tickets 3 and 6 (Marta; Otra SL).
const MARTA_ROW: Expect = Expect {
    group: MARTA,
    counts: [2, 1, 0, 0, 1, 1],
    first_response: Some((93600, 93600)),
    resolution: Some((345600, 345600)),
    first_response_sla: (0, 2, Some(0.0)),
    resolution_sla: (0, 2, Some(0.0)),
};

const NOTHING: Expect = Expect {
    group: "",
    counts: [0; 6],
    first_response: None,
    resolution: None,
    first_response_sla: (0, 0, None),
    resolution_sla: (0, 0, None),
};

/// The rows of each `--by` (then the total), and of no `--by`.
fn expected(by: Option<&str>) -> Vec<Expect> {
    let mut rows = match by {
        None => return vec![TOTAL.named("all")],
        Some("customer") => vec![
            Expect {
                counts: [4, 4, 1, 0, 1, 3],
                ..LUIS_ROW
            }
            .named("Cliente S.A."),
            MARTA_ROW.named("Otra SL"),
            Expect {
                counts: [1, 0, 0, 1, 0, 0],
                ..NOTHING
            }
            .named("(no customer)"),
        ],
        Some("type") => vec![BILLING.named("problem"), GENERAL.named("(no type)")],
        Some("priority") => vec![
            Expect {
                counts: [1, 0, 0, 0, 1, 0],
                ..NOTHING
            }
            .named("urgent"),
            BILLING.named("high"),
            // 4, 5, 8: resolutions 86400 and 604800, p90 = 86400 + 0.9 × 518400.
            Expect {
                group: "medium",
                counts: [2, 2, 0, 1, 0, 1],
                first_response: Some((7200, 7200)),
                resolution: Some((345600, 552960)),
                first_response_sla: (1, 0, Some(100.0)),
                resolution_sla: (1, 0, Some(100.0)),
            },
            Expect {
                group: "low",
                counts: [1, 1, 0, 0, 0, 1],
                first_response: Some((93600, 93600)),
                resolution: Some((345600, 345600)),
                first_response_sla: (0, 1, Some(0.0)),
                resolution_sla: (0, 1, Some(0.0)),
            },
        ],
        Some("queue") => vec![BILLING, GENERAL],
        Some("agent") => vec![
            LUIS_ROW,
            MARTA_ROW,
            Expect {
                counts: [2, 0, 0, 1, 1, 0],
                ..NOTHING
            }
            .named("(unassigned)"),
        ],
        Some(other) => panic!("no expectations for --by {other}"),
    };
    rows.push(TOTAL);
    rows
}

const GROUPINGS: [Option<&str>; 6] = [
    None,
    Some("customer"),
    Some("type"),
    Some("priority"),
    Some("queue"),
    Some("agent"),
];

const COLUMNS: [&str; 19] = [
    "group",
    "from",
    "to",
    "opened",
    "resolved",
    "closed",
    "cancelled",
    "backlog",
    "first_responses",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "first_response_met",
    "first_response_missed",
    "first_response_compliance_pct",
    "resolution_met",
    "resolution_missed",
    "resolution_compliance_pct",
];

fn report_args<'a>(by: Option<&'a str>, format: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "--now",
        NOW,
        "report",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--format",
        format,
    ];
    if let Some(by) = by {
        args.extend(["--by", by]);
    }
    args
}

/// A JSON value as a CSV cell would read (null: empty).
fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

#[test]
fn json_report_for_every_grouping() {
    let desk = seeded();
    for by in GROUPINGS {
        let doc = desk.json(&report_args(by, "json"));
        assert_eq!(doc["from"], "2026-11-01");
        assert_eq!(doc["to"], "2026-11-30");
        assert_eq!(doc["timezone"], "Europe/Madrid");
        assert_eq!(doc["by"], by.map_or(Value::Null, Value::from));
        let mut want = expected(by);
        let total = if by.is_some() {
            want.pop().expect("total row")
        } else {
            TOTAL
        };
        let rows = doc["rows"].as_array().expect("rows");
        let fields: Vec<&str> = COLUMNS
            .iter()
            .copied()
            .filter(|c| *c != "from" && *c != "to")
            .collect();
        let cells = |row: &Value| -> Vec<String> {
            let keys: Vec<&str> = row
                .as_object()
                .expect("row object")
                .keys()
                .map(String::as_str)
                .collect();
            let mut sorted = fields.clone();
            sorted.sort_unstable();
            let mut have = keys.clone();
            have.sort_unstable();
            assert_eq!(have, sorted, "--by {by:?}: row fields");
            fields.iter().map(|f| plain(&row[*f])).collect()
        };
        let got: Vec<Vec<String>> = rows.iter().map(cells).collect();
        let want: Vec<Vec<String>> = want.iter().map(Expect::cells).collect();
        assert_eq!(got, want, "--by {by:?}");
        assert_eq!(cells(&doc["total"]), total.cells(), "--by {by:?}: total");
    }
}

#[test]
fn csv_report_for_every_grouping() {
    let desk = seeded();
    for by in GROUPINGS {
        let out = desk.ok(&report_args(by, "csv"));
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(String::from)
            .collect();
        assert_eq!(header, COLUMNS);
        let mut got = Vec::new();
        for record in reader.records() {
            let record = record.expect("csv record");
            let cells: Vec<String> = record.iter().map(String::from).collect();
            assert_eq!((&cells[1][..], &cells[2][..]), ("2026-11-01", "2026-11-30"));
            let mut rest = vec![cells[0].clone()];
            rest.extend(cells[3..].iter().cloned());
            got.push(rest);
        }
        let want: Vec<Vec<String>> = expected(by).iter().map(Expect::cells).collect();
        assert_eq!(got, want, "--by {by:?}");
    }
}

#[test]
fn csv_report_goes_to_output_file_too() {
    let desk = seeded();
    let file = desk.path("r.csv");
    let mut args = report_args(Some("queue"), "csv");
    let path = file.to_str().expect("utf-8 path");
    args.extend(["--output", path]);
    assert_eq!(desk.ok(&args), "", "nothing on stdout");
    let text = std::fs::read_to_string(&file).expect("report file");
    assert_eq!(text, desk.ok(&report_args(Some("queue"), "csv")));
}

#[test]
fn table_report_for_every_grouping() {
    let desk = seeded();
    for by in GROUPINGS {
        let out = desk.ok(&report_args(by, "table"));
        let mut lines = out.lines();
        let title = lines.next().expect("title");
        assert!(
            title.starts_with("Report 2026-11-01 – 2026-11-30 (Europe/Madrid)"),
            "{title}"
        );
        assert_eq!(lines.next(), Some(""));
        let table: Vec<&str> = lines.collect();
        let header: Vec<&str> = table[0].split_whitespace().collect();
        assert_eq!(header[0], "GROUP");
        assert_eq!(header.len(), 17, "{}", table[0]);
        // Aligned: every line as wide as the header (the last column is right-aligned).
        let width = table[0].chars().count();
        for line in &table {
            assert_eq!(line.chars().count(), width, "--by {by:?}: {line:?}\n{out}");
        }
        let got: Vec<Vec<String>> = table[1..]
            .iter()
            .map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                let split = words.len() - 16;
                let mut row = vec![words[..split].join(" ")];
                row.extend(words[split..].iter().map(|w| w.to_string()));
                row
            })
            .collect();
        let want: Vec<Vec<String>> = expected(by).iter().map(Expect::human).collect();
        assert_eq!(got, want, "--by {by:?}\n{out}");
    }
}

/// Reads an xlsx file with openpyxl: the first sheet's title, cells (dates
/// as `{"date": ISO}`), header boldness, column widths, the number formats
/// of row 2 and the frozen pane.
fn openpyxl(path: &Path) -> Value {
    const PYTHON: &str = "/usr/bin/python3";
    let probe = Command::new(PYTHON)
        .args(["-c", "import openpyxl"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{PYTHON} cannot import openpyxl ({}): apt-get install -y python3-openpyxl",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run {PYTHON} ({e}): apt-get install -y python3-openpyxl"),
    }
    let script = r#"
import datetime, json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
ws = wb.worksheets[0]
def cell(c):
    v = c.value
    if isinstance(v, (datetime.datetime, datetime.date)):
        return {"date": v.isoformat()}
    return v
widths = [None] * ws.max_column
for dim in ws.column_dimensions.values():
    for i in range(dim.min, dim.max + 1):
        if i <= ws.max_column:
            widths[i - 1] = dim.width
print(json.dumps({
    "title": ws.title,
    "rows": [[cell(c) for c in row] for row in ws.iter_rows()],
    "bold": [bool(c.font.b) for c in ws[1]],
    "widths": widths,
    "formats": [c.number_format for c in ws[2]] if ws.max_row > 1 else [],
    "freeze": ws.freeze_panes,
}))
"#;
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "openpyxl could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("openpyxl JSON")
}

/// An xlsx cell against the CSV text it must equal: numbers compared as
/// numbers, booleans as `true`/`false`, blank as empty.
fn same_cell(got: &Value, want: &str) -> bool {
    match got {
        Value::Null => want.is_empty(),
        Value::Bool(b) => b.to_string() == want,
        Value::Number(n) => want
            .parse::<f64>()
            .is_ok_and(|w| (n.as_f64().unwrap_or(f64::NAN) - w).abs() < 1e-9),
        Value::String(s) => s == want,
        _ => false,
    }
}

fn check_sheet_shape(sheet: &Value, header: &[&str]) {
    let rows = sheet["rows"].as_array().expect("rows");
    let first: Vec<&str> = rows[0]
        .as_array()
        .expect("header row")
        .iter()
        .map(|v| v.as_str().unwrap_or("?"))
        .collect();
    assert_eq!(first, header);
    let bold = sheet["bold"].as_array().expect("bold");
    assert!(
        bold.iter().all(|b| b == true),
        "header row is bold: {bold:?}"
    );
    assert_eq!(sheet["freeze"], "A2", "header row frozen");
    for (i, w) in sheet["widths"]
        .as_array()
        .expect("widths")
        .iter()
        .enumerate()
    {
        let w = w
            .as_f64()
            .unwrap_or_else(|| panic!("column {i} has a set width"));
        assert!(
            w >= header[i].len() as f64 + 2.0 && w <= 63.0,
            "column {} width {w}",
            header[i]
        );
    }
}

#[test]
fn xlsx_report_for_every_grouping() {
    let desk = seeded();
    for by in GROUPINGS {
        let file = desk.path(&format!("report-{}.xlsx", by.unwrap_or("all")));
        let mut args = report_args(by, "xlsx");
        let path = file.to_str().expect("utf-8 path");
        args.extend(["--output", path]);
        assert_eq!(desk.ok(&args), "");
        let sheet = openpyxl(&file);
        assert_eq!(sheet["title"], "Report");
        check_sheet_shape(&sheet, &COLUMNS);
        let formats = sheet["formats"].as_array().expect("formats");
        assert_eq!(formats[1], "yyyy-mm-dd", "from is a date cell");
        let rows = sheet["rows"].as_array().expect("rows");
        let want = expected(by);
        assert_eq!(rows.len(), want.len() + 1, "--by {by:?}: header + rows");
        for (row, want) in rows[1..].iter().zip(&want) {
            let row = row.as_array().expect("row");
            assert_eq!(row[1], serde_json::json!({"date": "2026-11-01T00:00:00"}));
            assert_eq!(row[2], serde_json::json!({"date": "2026-11-30T00:00:00"}));
            let mut cells = vec![row[0].clone()];
            cells.extend(row[3..].iter().cloned());
            let want = want.cells();
            assert_eq!(cells.len(), want.len());
            for (i, (g, w)) in cells.iter().zip(&want).enumerate() {
                assert!(
                    same_cell(g, w),
                    "--by {by:?} row {}: cell {i}: {g} != {w:?}",
                    want[0]
                );
                if !w.is_empty() && i > 0 {
                    assert!(g.is_number(), "--by {by:?}: {g} is a number cell");
                }
            }
        }
    }
}

#[test]
fn xlsx_needs_an_output_file_and_periods_must_run_forward() {
    let desk = seeded();
    let out = desk.run(&["--now", NOW, "report", "--format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output"));
    let out = desk.run(&[
        "--now",
        NOW,
        "report",
        "--from",
        "2026-11-30",
        "--to",
        "2026-11-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("before it starts"));
}

#[test]
fn the_default_period_is_this_month_so_far() {
    let desk = seeded();
    // 23:30 UTC on 30 November is already 1 December in Madrid.
    let doc = desk.json(&[
        "--now",
        "2026-11-30T23:30:00Z",
        "report",
        "--format",
        "json",
    ]);
    assert_eq!(
        (doc["from"].as_str(), doc["to"].as_str()),
        (Some("2026-12-01"), Some("2026-12-01"))
    );
    assert_eq!(doc["rows"][0]["opened"], 0);
    // Mid-November: 1–20 November; 7 not opened yet, 6 resolved on the 20th.
    let doc = desk.json(&[
        "--now",
        "2026-11-20T12:00:00Z",
        "report",
        "--format",
        "json",
    ]);
    assert_eq!(
        (doc["from"].as_str(), doc["to"].as_str()),
        (Some("2026-11-01"), Some("2026-11-20"))
    );
    assert_eq!(doc["total"]["opened"], 6);
    assert_eq!(doc["total"]["resolved"], 5);
    // Only --to: from the first of its month.
    let doc = desk.json(&[
        "--now",
        NOW,
        "report",
        "--to",
        "2026-10-31",
        "--format",
        "json",
    ]);
    assert_eq!(
        (doc["from"].as_str(), doc["to"].as_str()),
        (Some("2026-10-01"), Some("2026-10-31"))
    );
    // October: 8 opened and answered (in 1 h), its resolution deadline missed, in the backlog at the end.
    let t = &doc["total"];
    assert_eq!(
        (
            t["opened"].as_u64(),
            t["backlog"].as_u64(),
            t["first_response_median_seconds"].as_i64()
        ),
        (Some(1), Some(1), Some(3600))
    );
    assert_eq!(
        (
            t["resolution_met"].as_u64(),
            t["resolution_missed"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(t["first_response_compliance_pct"], 100.0);
}

const EXPORT_COLUMNS: [&str; 29] = [
    "id",
    "subject",
    "status",
    "priority",
    "type",
    "categories",
    "queue",
    "mailbox",
    "requester",
    "participants",
    "customer",
    "assignee",
    "duplicate_of",
    "created_at",
    "updated_at",
    "last_update_at",
    "first_response_due",
    "first_response_at",
    "resolution_due",
    "resolved_at",
    "closed_at",
    "sla_policy",
    "sla_state",
    "escalation_level",
    "first_response_breached",
    "resolution_breached",
    "first_response_seconds",
    "resolution_seconds",
    "follow_ups",
];

/// Per ticket: the export cells checked (column, CSV text).
fn export_expectations() -> Vec<(i64, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            1,
            vec![
                ("subject", "Factura duplicada"),
                ("status", "closed"),
                ("priority", "high"),
                ("type", "problem"),
                ("queue", "billing"),
                ("mailbox", "soporte"),
                ("requester", "ana@cliente.com"),
                ("customer", "Cliente S.A."),
                ("assignee", LUIS),
                ("created_at", "2026-11-02T09:00:00Z"),
                ("first_response_due", "2026-11-02T13:00:00Z"),
                ("first_response_at", "2026-11-02T10:30:00Z"),
                ("resolved_at", "2026-11-03T09:00:00Z"),
                ("closed_at", "2026-11-10T10:00:00Z"),
                ("sla_policy", "problema"),
                ("first_response_breached", "false"),
                ("resolution_breached", "false"),
                ("first_response_seconds", "5400"),
                ("resolution_seconds", "32400"),
                ("follow_ups", "0"),
            ],
        ),
        (
            2,
            vec![
                ("first_response_breached", "true"),
                ("resolution_breached", "false"),
                ("first_response_seconds", "21600"),
                ("resolution_seconds", "46800"),
            ],
        ),
        (
            3,
            vec![
                ("status", "new"),
                ("customer", "Otra SL"),
                ("first_response_due", "2026-11-05T11:00:00Z"),
                ("first_response_at", ""),
                ("closed_at", ""),
                ("first_response_breached", "true"),
                ("resolution_breached", "true"),
                ("first_response_seconds", ""),
                ("resolution_seconds", ""),
            ],
        ),
        (
            4,
            vec![
                ("type", ""),
                ("sla_policy", "general"),
                ("first_response_seconds", "7200"),
                ("resolution_seconds", "86400"),
                ("follow_ups", "1"),
            ],
        ),
        (
            5,
            vec![
                ("status", "cancelled"),
                ("customer", ""),
                ("assignee", ""),
                ("first_response_breached", "false"),
                ("resolution_breached", "false"),
            ],
        ),
        (
            6,
            vec![
                ("priority", "low"),
                ("first_response_breached", "true"),
                ("resolution_breached", "true"),
                ("first_response_seconds", "93600"),
                ("resolution_seconds", "345600"),
            ],
        ),
        (
            7,
            vec![
                ("priority", "urgent"),
                ("first_response_breached", "true"),
                ("resolution_breached", "false"),
            ],
        ),
        (
            8,
            vec![
                ("created_at", "2026-10-26T10:00:00Z"),
                ("first_response_breached", "false"),
                ("resolution_breached", "true"),
                ("first_response_seconds", "3600"),
                ("resolution_seconds", "604800"),
            ],
        ),
    ]
}

fn column(name: &str) -> usize {
    EXPORT_COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn export_csv(desk: &Desk, extra: &[&str]) -> Vec<Vec<String>> {
    let file = desk.path("export.csv");
    let path = file.to_str().expect("utf-8 path");
    let mut args = vec!["--now", NOW, "export", "--format", "csv", "--output", path];
    args.extend_from_slice(extra);
    assert_eq!(desk.ok(&args), "");
    let text = std::fs::read_to_string(&file).expect("export file");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, EXPORT_COLUMNS);
    reader
        .records()
        .map(|r| r.expect("record").iter().map(String::from).collect())
        .collect()
}

#[test]
fn csv_export_has_one_row_per_ticket_with_known_values() {
    let desk = seeded();
    let rows = export_csv(&desk, &[]);
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7", "8"]);
    for (id, checks) in export_expectations() {
        let row = &rows[(id - 1) as usize];
        for (name, want) in checks {
            assert_eq!(row[column(name)], want, "ticket {id} {name}");
        }
    }
    // Filters: status now, and creation day in the desk's time zone.
    let ids = |rows: Vec<Vec<String>>| rows.into_iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    assert_eq!(ids(export_csv(&desk, &["--status", "new"])), ["3", "7"]);
    assert_eq!(
        ids(export_csv(
            &desk,
            &["--status", "resolved", "--status", "closed"]
        )),
        ["1", "2", "4", "6", "8"]
    );
    assert_eq!(
        ids(export_csv(
            &desk,
            &["--from", "2026-11-09", "--to", "2026-11-16"]
        )),
        ["4", "5", "6"]
    );
    assert_eq!(ids(export_csv(&desk, &["--to", "2026-10-31"])), ["8"]);
}

#[test]
fn xlsx_export_has_real_dates_numbers_and_widths() {
    let desk = seeded();
    let csv_rows = export_csv(&desk, &[]);
    let file = desk.path("export.xlsx");
    let path = file.to_str().expect("utf-8 path");
    desk.ok(&["--now", NOW, "export", "--format", "xlsx", "--output", path]);
    let sheet = openpyxl(&file);
    assert_eq!(sheet["title"], "Tickets");
    check_sheet_shape(&sheet, &EXPORT_COLUMNS);
    let formats = sheet["formats"].as_array().expect("formats");
    assert_eq!(formats[column("created_at")], "yyyy-mm-dd hh:mm");
    let rows = sheet["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 9, "header + 8 tickets");
    // Every cell says what the CSV says; instants are Excel date-times in
    // Madrid time (UTC+1 in November and late October).
    for (row, csv_row) in rows[1..].iter().zip(&csv_rows) {
        let row = row.as_array().expect("row");
        for (i, (got, want)) in row.iter().zip(csv_row).enumerate() {
            if let Some(date) = got.get("date").and_then(Value::as_str) {
                let utc = chrono::DateTime::parse_from_rfc3339(want).expect("csv instant");
                let local = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%dT%H:%M:%S")
                    .expect("openpyxl datetime");
                assert_eq!(
                    local - utc.naive_utc(),
                    chrono::Duration::hours(1),
                    "{} {date} vs {want}",
                    EXPORT_COLUMNS[i]
                );
            } else {
                assert!(
                    same_cell(got, want),
                    "ticket {} {}: {got} != {want:?}",
                    csv_row[0],
                    EXPORT_COLUMNS[i]
                );
            }
        }
    }
    let t1 = rows[1].as_array().expect("row");
    assert_eq!(
        t1[column("created_at")],
        serde_json::json!({"date": "2026-11-02T10:00:00"})
    );
    assert_eq!(
        t1[column("first_response_at")],
        serde_json::json!({"date": "2026-11-02T11:30:00"})
    );
    assert_eq!(t1[column("first_response_seconds")], 5400);
    assert_eq!(t1[column("first_response_breached")], false);
    assert_eq!(t1[column("id")], 1);
    // The subject column fits the longest subject ("Factura duplicada", 17).
    let widths = sheet["widths"].as_array().expect("widths");
    let subject = widths[column("subject")].as_f64().unwrap_or(0.0);
    assert!((19.0..21.0).contains(&subject), "subject width {subject}");
}
