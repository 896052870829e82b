//! JUnit XML, the report format CI systems (GitLab, Jenkins, GitHub Actions
//! reporters, Azure Pipelines) render as test results: `testsuites` holding
//! a `testsuite` per group, a `testcase` per check, and a `failure` (the
//! check found a problem) or `error` (the input could not be used) in it.

use std::io::{self, Write};
use std::time::Duration;

pub struct TestSuites {
    pub name: String,
    pub suites: Vec<TestSuite>,
}

pub struct TestSuite {
    pub name: String,
    /// The file the suite comes from.
    pub file: Option<String>,
    pub properties: Vec<(String, String)>,
    pub cases: Vec<TestCase>,
}

pub struct TestCase {
    pub name: String,
    pub classname: String,
    pub file: Option<String>,
    pub time: Option<Duration>,
    pub problem: Option<Problem>,
    /// Shown next to the result, e.g. warnings on a passing case.
    pub system_out: Option<String>,
}

pub struct Problem {
    pub kind: ProblemKind,
    /// One line: CI systems show it as the headline.
    pub message: String,
    pub r#type: String,
    /// The whole story, shown when the result is opened.
    pub body: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Failure,
    Error,
}

struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    time: Option<Duration>,
}

fn counts<'a>(cases: impl Iterator<Item = &'a TestCase>) -> Counts {
    let mut counts = Counts { tests: 0, failures: 0, errors: 0, time: None };
    for case in cases {
        counts.tests += 1;
        match case.problem.as_ref().map(|p| p.kind) {
            Some(ProblemKind::Failure) => counts.failures += 1,
            Some(ProblemKind::Error) => counts.errors += 1,
            None => {}
        }
        if let Some(time) = case.time {
            counts.time = Some(counts.time.unwrap_or_default() + time);
        }
    }
    counts
}

impl TestSuites {
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let all = counts(self.suites.iter().flat_map(|s| &s.cases));
        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(out, "<testsuites{}>", count_attributes(&self.name, &all))?;
        for suite in &self.suites {
            let counts = counts(suite.cases.iter());
            let file = attribute("file", suite.file.as_deref());
            writeln!(out, "  <testsuite{}{file}>", count_attributes(&suite.name, &counts))?;
            if !suite.properties.is_empty() {
                writeln!(out, "    <properties>")?;
                for (name, value) in &suite.properties {
                    writeln!(out, "      <property name=\"{}\" value=\"{}\"/>", escape(name), escape(value))?;
                }
                writeln!(out, "    </properties>")?;
            }
            for case in &suite.cases {
                write_case(case, out)?;
            }
            writeln!(out, "  </testsuite>")?;
        }
        writeln!(out, "</testsuites>")
    }
}

fn write_case(case: &TestCase, out: &mut dyn Write) -> io::Result<()> {
    let attributes = format!(
        " name=\"{}\" classname=\"{}\"{}{}",
        escape(&case.name),
        escape(&case.classname),
        attribute("file", case.file.as_deref()),
        attribute("time", case.time.map(seconds).as_deref()),
    );
    if case.problem.is_none() && case.system_out.is_none() {
        return writeln!(out, "    <testcase{attributes}/>");
    }
    writeln!(out, "    <testcase{attributes}>")?;
    if let Some(problem) = &case.problem {
        let element = match problem.kind {
            ProblemKind::Failure => "failure",
            ProblemKind::Error => "error",
        };
        writeln!(
            out,
            "      <{element} message=\"{}\" type=\"{}\">{}</{element}>",
            escape(&problem.message),
            escape(&problem.r#type),
            escape_text(&problem.body)
        )?;
    }
    if let Some(text) = &case.system_out {
        writeln!(out, "      <system-out>{}</system-out>", escape_text(text))?;
    }
    writeln!(out, "    </testcase>")
}

fn count_attributes(name: &str, counts: &Counts) -> String {
    format!(
        " name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\"{}",
        escape(name),
        counts.tests,
        counts.failures,
        counts.errors,
        attribute("time", counts.time.map(seconds).as_deref())
    )
}

fn attribute(name: &str, value: Option<&str>) -> String {
    value.map(|value| format!(" {name}=\"{}\"", escape(value))).unwrap_or_default()
}

/// Seconds with millisecond precision, as JUnit readers expect.
fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

/// Escapes text for an XML attribute value. Characters XML 1.0 cannot hold
/// at all (most control characters) become U+FFFD, so a hostile object name
/// cannot make the report unreadable; newlines and tabs are written as
/// references, which attribute normalization keeps.
fn escape(text: &str) -> String {
    escape_with(text, true)
}

/// Escapes text for element content, where line breaks stay as they are.
fn escape_text(text: &str) -> String {
    escape_with(text, false)
}

fn escape_with(text: &str, attribute: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if !attribute => escaped.push(c),
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            '\t' => escaped.push_str("&#9;"),
            c if is_xml_char(c) => escaped.push(c),
            _ => escaped.push('\u{FFFD}'),
        }
    }
    escaped
}

/// XML 1.0's Char production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_characters_xml_cannot_hold() {
        assert_eq!(escape(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
        assert_eq!(escape("line\nnext\u{1}\u{FFFE}"), "line&#10;next\u{FFFD}\u{FFFD}");
        assert_eq!(escape_text("a\n<b>\tc"), "a\n&lt;b&gt;\tc");
        assert_eq!(escape("é 🚀"), "é 🚀");
    }

    #[test]
    fn counts_failures_errors_and_time_per_suite_and_overall() {
        let case = |problem: Option<ProblemKind>| TestCase {
            name: "c".to_owned(),
            classname: "s".to_owned(),
            file: None,
            time: Some(Duration::from_millis(1500)),
            problem: problem.map(|kind| Problem {
                kind,
                message: "m".to_owned(),
                r#type: "t".to_owned(),
                body: "b".to_owned(),
            }),
            system_out: None,
        };
        let report = TestSuites {
            name: "all".to_owned(),
            suites: vec![TestSuite {
                name: "s".to_owned(),
                file: Some("f.yaml".to_owned()),
                properties: Vec::new(),
                cases: vec![case(None), case(Some(ProblemKind::Failure)), case(Some(ProblemKind::Error))],
            }],
        };
        let mut out = Vec::new();
        report.write(&mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(
                r#"<testsuites name="all" tests="3" failures="1" errors="1" skipped="0" time="4.500">"#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"<testsuite name="s" tests="3" failures="1" errors="1" skipped="0" time="4.500" file="f.yaml">"#), "{xml}");
        assert!(xml.contains(r#"<failure message="m" type="t">b</failure>"#), "{xml}");
        assert!(xml.contains(r#"<error message="m" type="t">b</error>"#), "{xml}");
    }
}
