//! Templates: text with `{{ expr }}` parts, where `expr` is a rhai expression evaluated with the
//! recipient's fields as variables. `{{{ expr }}}` inserts the value as it is; in HTML templates
//! `{{ expr }}` escapes it. Owns rhai and its sandbox: no file, network or module access, and
//! limits on operations, call depth, string and collection sizes and time, so a runaway
//! expression fails fast with an error that names the template, line, column and recipient.
//! Compiles each expression once; rendering reuses the compiled ASTs for every recipient.
//! Also runs the campaign's personalization script (same sandbox, same limits), which may add
//! fields or skip a recipient, and checks at `check` time, with rhai's strict-variables mode,
//! that every name a template uses is a field the recipient list (or the script) provides.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope};

use super::dates::DateTime;

/// How long one expression may run before it is stopped.
const TIME_LIMIT: Duration = Duration::from_secs(2);
const MAX_OPERATIONS: u64 = 200_000;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// The template text itself is wrong (unclosed `{{`, bad expression).
    Syntax,
    /// The expression names a field that the recipient does not have.
    UnknownField(String),
    /// The expression ran out of its operation, size or time allowance.
    Limit,
    /// Anything else the expression did wrong at run time.
    Runtime,
}

/// An error in a template, located in the file, with the recipient whose fields caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}, line {line}, column {column}: {message}{}", recipient.as_ref().map(|r| format!(" (recipient {r})")).unwrap_or_default())]
pub struct TemplateError {
    pub template: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub kind: TemplateErrorKind,
    pub recipient: Option<String>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr {
        ast: rhai::AST,
        /// The expression's text, kept for the strict check of field names.
        source: String,
        line: usize,
        column: usize,
        escape: bool,
    },
}

/// A compiled personalization script.
#[derive(Debug, Clone)]
pub struct Script {
    name: String,
    ast: rhai::AST,
    source: String,
    /// The variables the script declares at its top level (`let x = …`): new fields.
    defines: Vec<String>,
}

impl Script {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The new fields the script declares with a top-level `let` or `const`.
    pub fn defines(&self) -> &[String] {
        &self.defines
    }
}

/// What a personalization script decided for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOutcome {
    /// Render and send, with whatever fields the script set.
    Continue,
    /// Do not send: the script called `skip(reason)`.
    Skip(String),
}

/// The value `skip(reason)` throws to stop a script; recognised when the script ends.
#[derive(Debug, Clone)]
struct SkipSignal(String);

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The variables one recipient's templates see.
pub struct Variables {
    scope: Scope<'static>,
}

impl Variables {
    pub fn new<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Variables {
        let mut scope = Scope::new();
        for (name, value) in fields {
            // Not constants: a personalization script may rewrite a field (`city = title(city)`).
            scope.push(name.to_string(), value.to_string());
        }
        Variables { scope }
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.scope.set_or_push(name.to_string(), value.to_string());
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.scope
            .get_value::<rhai::ImmutableString>(name)
            .map(|value| value.to_string())
    }
}

/// The sandboxed rhai engine shared by every template of a campaign.
pub struct TemplateEngine {
    engine: Engine,
}

impl Default for TemplateEngine {
    fn default() -> Self {
        TemplateEngine::new()
    }
}

impl TemplateEngine {
    pub fn new() -> TemplateEngine {
        TemplateEngine {
            engine: sandboxed_engine(false),
        }
    }

    /// Compiles `source`; `name` is how errors refer to it (a file name or "subject").
    pub fn compile(&self, name: &str, source: &str, html: bool) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut line = 1;
        let mut column = 1;
        let syntax = |line, column, message: String| TemplateError {
            template: name.to_string(),
            line,
            column,
            message,
            kind: TemplateErrorKind::Syntax,
            recipient: None,
        };
        while let Some(start) = rest.find("{{") {
            let (text, tail) = rest.split_at(start);
            if !text.is_empty() {
                parts.push(Part::Text(text.to_string()));
            }
            advance(&mut line, &mut column, text);
            let raw = tail.starts_with("{{{");
            let open = if raw { 3 } else { 2 };
            let body = &tail[open..];
            let Some(end) = expression_end(body) else {
                return Err(syntax(
                    line,
                    column,
                    format!("\"{}\" is never closed", &tail[..open]),
                ));
            };
            let expression = &body[..end];
            let close = if raw { "}}}" } else { "}}" };
            if !body[end..].starts_with(close) {
                return Err(syntax(
                    line,
                    column,
                    format!("\"{}\" must be closed by \"{close}\"", &tail[..open]),
                ));
            }
            let (expr_line, expr_column) = (line, column + open);
            if expression.trim().is_empty() {
                return Err(syntax(line, column, "empty \"{{ }}\"".to_string()));
            }
            let ast = self.engine.compile(expression).map_err(|error| {
                let (l, c) = locate(expr_line, expr_column, error.position());
                syntax(l, c, error.err_type().to_string())
            })?;
            parts.push(Part::Expr {
                ast,
                source: expression.to_string(),
                line: expr_line,
                column: expr_column,
                escape: html && !raw,
            });
            let consumed = &tail[..open + end + close.len()];
            advance(&mut line, &mut column, consumed);
            rest = &tail[open + end + close.len()..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            name: name.to_string(),
            parts,
        })
    }

    /// Renders `template` with `variables`; `recipient` names whose fields they are, for errors.
    pub fn render(
        &self,
        template: &Template,
        variables: &mut Variables,
        recipient: &str,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &template.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Expr {
                    ast,
                    source,
                    line,
                    column,
                    escape,
                } => {
                    // `{{ name }}` and `{{ url(name) }}` are most of a template: answered
                    // without the interpreter when the field holds text.
                    if let Some(text) = fast_path(source, variables) {
                        if *escape {
                            escape_html_into(&text, &mut out);
                        } else {
                            out.push_str(&text);
                        }
                        continue;
                    }
                    DEADLINE.with(|deadline| deadline.set(Some(Instant::now() + TIME_LIMIT)));
                    let value = self
                        .engine
                        .eval_ast_with_scope::<Dynamic>(&mut variables.scope, ast);
                    DEADLINE.with(|deadline| deadline.set(None));
                    let value = value.map_err(|error| {
                        runtime_error(&template.name, *line, *column, &error, recipient)
                    })?;
                    let text = if value.is_unit() {
                        String::new()
                    } else {
                        value.to_string()
                    };
                    if *escape {
                        escape_html_into(&text, &mut out);
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        }
        Ok(out)
    }
}

impl TemplateEngine {
    /// Compiles a personalization script; `name` is its file name, for errors.
    pub fn compile_script(&self, name: &str, source: &str) -> Result<Script, TemplateError> {
        let ast = self.engine.compile(source).map_err(|error| {
            let (line, column) = locate(1, 1, error.position());
            TemplateError {
                template: name.to_string(),
                line,
                column,
                message: error.err_type().to_string(),
                kind: TemplateErrorKind::Syntax,
                recipient: None,
            }
        })?;
        Ok(Script {
            name: name.to_string(),
            ast,
            source: source.to_string(),
            defines: top_level_declarations(source),
        })
    }

    /// Runs the script with one recipient's fields; the variables it declares or changes stay in
    /// `variables` for the templates.
    pub fn run_script(
        &self,
        script: &Script,
        variables: &mut Variables,
        recipient: &str,
    ) -> Result<ScriptOutcome, TemplateError> {
        DEADLINE.with(|deadline| deadline.set(Some(Instant::now() + TIME_LIMIT)));
        let result = self
            .engine
            .run_ast_with_scope(&mut variables.scope, &script.ast);
        DEADLINE.with(|deadline| deadline.set(None));
        match result {
            Ok(()) => Ok(ScriptOutcome::Continue),
            Err(error) => match skip_reason(&error) {
                Some(reason) => Ok(ScriptOutcome::Skip(reason)),
                None => Err(runtime_error(&script.name, 1, 1, &error, recipient)),
            },
        }
    }

    /// Checks, without any recipient, that every variable `template` uses is one of `known`
    /// (rhai's strict-variables mode at compile time), so a misspelt field is found even in a
    /// branch no recipient takes. Returns every unknown name with where it is.
    pub fn check_names(&self, template: &Template, known: &[String]) -> Vec<TemplateError> {
        let strict = sandboxed_engine(true);
        let scope = known_scope(known);
        let mut errors = Vec::new();
        for part in &template.parts {
            if let Part::Expr {
                source,
                line,
                column,
                ..
            } = part
                && let Err(error) = strict.compile_with_scope(&scope, source)
            {
                errors.push(strict_error(&template.name, *line, *column, &error));
            }
        }
        errors
    }

    /// The same check for a personalization script.
    pub fn check_script_names(&self, script: &Script, known: &[String]) -> Vec<TemplateError> {
        let strict = sandboxed_engine(true);
        match strict.compile_with_scope(&known_scope(known), &script.source) {
            Ok(_) => Vec::new(),
            Err(error) => vec![strict_error(&script.name, 1, 1, &error)],
        }
    }
}

fn known_scope(known: &[String]) -> Scope<'static> {
    let mut scope = Scope::new();
    for name in known {
        scope.push(name.clone(), String::new());
    }
    scope
}

fn strict_error(name: &str, line: usize, column: usize, error: &rhai::ParseError) -> TemplateError {
    let (l, c) = locate(line, column, error.position());
    let (kind, message) = match error.err_type() {
        rhai::ParseErrorType::VariableUndefined(field) => (
            TemplateErrorKind::UnknownField(field.clone()),
            format!("there is no field named \"{field}\""),
        ),
        other => (TemplateErrorKind::Syntax, other.to_string()),
    };
    TemplateError {
        template: name.to_string(),
        line: l,
        column: c,
        message,
        kind,
        recipient: None,
    }
}

/// The reason of a `skip(…)` call, however deep in the script's functions it was made.
fn skip_reason(error: &EvalAltResult) -> Option<String> {
    match error {
        EvalAltResult::ErrorRuntime(value, _) => value
            .clone()
            .try_cast::<SkipSignal>()
            .map(|SkipSignal(reason)| reason),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => skip_reason(inner),
        _ => None,
    }
}

/// Names declared by `let`/`const` at the top level of a script (brace depth 0, outside
/// strings and comments): the fields a script adds. A scan, not a parse: good enough to tell
/// the strict check which names exist, and it can only err towards accepting a name.
fn top_level_declarations(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    let mut at_word_start = true;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'"' | b'`' | b'\'' => {
                index += 1;
                while let Some(&inner) = bytes.get(index) {
                    if inner == b'\\' {
                        index += 1;
                    } else if inner == byte {
                        break;
                    }
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while bytes.get(index).is_some_and(|b| *b != b'\n') {
                    index += 1;
                }
            }
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ if depth == 0 && at_word_start => {
                let rest = source.get(index..).unwrap_or("");
                for keyword in ["let ", "const "] {
                    if let Some(after) = rest.strip_prefix(keyword) {
                        let name: String = after
                            .trim_start()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() && !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
            }
            _ => {}
        }
        at_word_start = !bytes
            .get(index)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        index += 1;
    }
    names
}

/// The sandbox: no modules, no eval, no output, limits on work, depth, sizes and time.
fn sandboxed_engine(strict: bool) -> Engine {
    let mut engine = Engine::new();
    engine.set_strict_variables(strict);

    // No `import`: modules could read files.
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(32);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(1 << 20);
    engine.set_max_array_size(10_000);
    engine.set_max_map_size(10_000);
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.on_progress(|operations| {
        if operations % 1_024 != 0 {
            return None;
        }
        let expired =
            DEADLINE.with(|deadline| deadline.get().is_some_and(|at| Instant::now() > at));
        expired.then(|| Dynamic::from("time limit"))
    });
    register_helpers(&mut engine);
    engine
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value of `name` or `helper(name)` for a text field and a pure helper, computed directly;
/// None sends the expression to rhai (which also reports unknown names properly).
fn fast_path(source: &str, variables: &Variables) -> Option<String> {
    let source = source.trim();
    let (helper, name) = match source.split_once('(') {
        Some((helper, rest)) => (Some(helper.trim()), rest.strip_suffix(')')?.trim()),
        None => (None, source),
    };
    if !is_identifier(name) {
        return None;
    }
    let value = variables
        .scope
        .get(name)?
        .read_lock::<rhai::ImmutableString>()?
        .to_string();
    Some(match helper {
        None => value,
        Some("url") => url_encode(&value),
        Some("html") => escape_html(&value),
        Some("upper") => value.to_uppercase(),
        Some("lower") => value.to_lowercase(),
        Some("title") => title_case(&value),
        Some(_) => return None,
    })
}

/// Finds the `}}` that closes an expression, skipping braces inside the expression's own blocks
/// and string literals (`{{ if x { "a" } else { "}}" } }}` is one expression).
fn expression_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match quote {
            Some(q) => {
                if byte == b'\\' {
                    index += 1;
                } else if byte == q {
                    quote = None;
                }
            }
            None => match byte {
                b'"' | b'`' | b'\'' => quote = Some(byte),
                b'{' => depth += 1,
                b'}' if depth == 0 && bytes.get(index + 1) == Some(&b'}') => return Some(index),
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        index += 1;
    }
    None
}

fn advance(line: &mut usize, column: &mut usize, text: &str) {
    for c in text.chars() {
        if c == '\n' {
            *line += 1;
            *column = 1;
        } else {
            *column += 1;
        }
    }
}

/// Maps a position inside an expression to the template's line and column.
fn locate(line: usize, column: usize, position: Position) -> (usize, usize) {
    match (position.line(), position.position()) {
        (Some(1), Some(c)) => (line, column + c - 1),
        (Some(l), Some(c)) => (line + l - 1, c),
        _ => (line, column),
    }
}

fn runtime_error(
    template: &str,
    line: usize,
    column: usize,
    error: &EvalAltResult,
    recipient: &str,
) -> TemplateError {
    let (l, c) = locate(line, column, error.position());
    let (kind, message) = match error {
        EvalAltResult::ErrorVariableNotFound(name, _) => (
            TemplateErrorKind::UnknownField(name.clone()),
            format!("there is no field named \"{name}\""),
        ),
        EvalAltResult::ErrorTooManyOperations(_) => (
            TemplateErrorKind::Limit,
            "the expression runs too long (it was stopped; is there an endless loop?)".to_string(),
        ),
        EvalAltResult::ErrorTerminated(_, _) => (
            TemplateErrorKind::Limit,
            "the expression took more than 2 seconds and was stopped".to_string(),
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => (
            TemplateErrorKind::Limit,
            format!("the expression built too large a value ({what})"),
        ),
        EvalAltResult::ErrorStackOverflow(_) | EvalAltResult::ErrorTooManyModules(_) => (
            TemplateErrorKind::Limit,
            "the expression nests or recurses too deeply".to_string(),
        ),
        other => (TemplateErrorKind::Runtime, other.to_string()),
    };
    TemplateError {
        template: template.to_string(),
        line: l,
        column: c,
        message,
        kind,
        recipient: Some(recipient.to_string()),
    }
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_html_into(text, &mut out);
    out
}

fn escape_html_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for values placed in URLs.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_word_start = true;
    for c in text.chars() {
        if at_word_start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        at_word_start = c.is_whitespace() || c == '-';
    }
    out
}

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn script_error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message),
        Position::NONE,
    ))
}

fn skip_with(reason: &str) -> Fallible<()> {
    let reason = reason.trim();
    let reason = if reason.is_empty() {
        "skipped by the script".to_string()
    } else {
        reason.to_string()
    };
    Err(Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(SkipSignal(reason)),
        Position::NONE,
    )))
}

/// `format_date(signup_date, "%d %B %Y")`; an empty value gives an empty text (so
/// `or(format_date(d, "%Y"), "soon")` works), anything else that is not a date is an error.
fn format_date(value: &str, pattern: &str) -> Fallible<String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    let Some(date) = DateTime::parse(value) else {
        return Err(script_error(format!(
            "\"{value}\" is not a date like 2024-03-05 (format_date)"
        )));
    };
    date.format(pattern).map_err(script_error)
}

fn register_helpers(engine: &mut Engine) {
    // Today's date (UTC) in the given format: `date("%Y-%m-%d")`.
    engine.register_fn("date", |pattern: &str| -> Fallible<String> {
        DateTime::now_utc().format(pattern).map_err(script_error)
    });
    engine.register_fn("format_date", format_date);
    // `skip("reason")` in the personalization script: this recipient gets no message.
    engine.register_fn("skip", skip_with);
    engine.register_fn("skip", || skip_with(""));
    engine.register_fn("upper", |text: &str| text.to_uppercase());
    engine.register_fn("lower", |text: &str| text.to_lowercase());
    engine.register_fn("title", title_case);
    engine.register_fn("url", url_encode);
    engine.register_fn("html", escape_html);
    // `or(first_name, "friend")`: a fallback for empty fields.
    engine.register_fn("or", |value: &str, fallback: &str| {
        if value.trim().is_empty() {
            fallback.to_string()
        } else {
            value.to_string()
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, html: bool, fields: &[(&str, &str)]) -> Result<String, TemplateError> {
        let engine = TemplateEngine::new();
        let template = engine.compile("t.html", source, html)?;
        let mut variables = Variables::new(fields.iter().copied());
        engine.render(&template, &mut variables, "a@x.example")
    }

    fn check(source: &str, expected: &str) {
        let fields = [
            ("first_name", "Ada"),
            ("city", "Paris"),
            ("empty", ""),
            ("tag", "<b>"),
        ];
        assert_eq!(render(source, true, &fields).unwrap(), expected, "{source}");
    }

    #[test]
    fn renders_expressions() {
        check("Hello {{ first_name }}!", "Hello Ada!");
        check("{{first_name}}{{city}}", "AdaParis");
        check(
            "{{ if city == \"Paris\" { \"Bonjour\" } else { \"Hello\" } }}",
            "Bonjour",
        );
        check("{{ if city == \"Rome\" { \"}}\" } else { \"ok\" } }}", "ok");
        check("{{ upper(first_name) }} {{ lower(city) }}", "ADA paris");
        check(
            "{{ or(empty, \"friend\") }} {{ or(first_name, \"friend\") }}",
            "friend Ada",
        );
        check("{{ title(\"jean-luc picard\") }}", "Jean-Luc Picard");
        check("{{ url(\"a b&c\") }}", "a%20b%26c");
        check("{{ tag }} {{{ tag }}}", "&lt;b&gt; <b>");
        check("{{ 40 + 2 }}", "42");
        check("no expressions at all", "no expressions at all");
        check("{ single } braces", "{ single } braces");
    }

    #[test]
    fn text_templates_do_not_escape() {
        assert_eq!(
            render("{{ tag }}", false, &[("tag", "<b>")]).unwrap(),
            "<b>"
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let error = render("line one\nline two {{ first_name +  }}", true, &[]).unwrap_err();
        assert_eq!((error.template.as_str(), error.line), ("t.html", 2));
        assert_eq!(error.kind, TemplateErrorKind::Syntax);
        let unclosed = render("a\nb {{ first_name", true, &[]).unwrap_err();
        assert_eq!((unclosed.line, unclosed.column), (2, 3));
        assert!(unclosed.message.contains("never closed"));
    }

    #[test]
    fn unknown_fields_name_the_field_and_recipient() {
        let error = render("Hi\n  {{ frist_name }}", true, &[("first_name", "Ada")]).unwrap_err();
        assert_eq!(
            error.kind,
            TemplateErrorKind::UnknownField("frist_name".into())
        );
        assert_eq!((error.line, error.column), (2, 6));
        let message = error.to_string();
        assert!(
            message.contains("frist_name") && message.contains("a@x.example"),
            "{message}"
        );
    }

    #[test]
    fn runaway_expressions_fail_fast() {
        let started = Instant::now();
        for source in [
            "{{ loop { } }}",
            "{{ let s = \"x\"; loop { s += s; } }}",
            "{{ fn f(n) { f(n + 1) } f(0) }}",
            "{{ let a = []; loop { a.push(1); } }}",
        ] {
            let error = render(source, true, &[]).unwrap_err();
            assert_eq!(error.kind, TemplateErrorKind::Limit, "{source}: {error}");
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn no_file_or_module_access() {
        assert!(render("{{ import \"std\" as s; 1 }}", true, &[]).is_err());
        assert!(render("{{ eval(\"1\") }}", true, &[]).is_err());
    }

    #[test]
    fn random_templates_never_panic() {
        let pieces = [
            "{{", "}}", "{{{", "}}}", "{", "}", "\"", "x", " ", "\n", "loop", "+", "if", "é", "'",
            "`", "\\", "1",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let engine = TemplateEngine::new();
        for _ in 0..2_000 {
            let mut source = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for step in 0..(seed % 12) {
                let index = ((seed >> (step * 4)) as usize) % pieces.len();
                source.push_str(pieces[index]);
            }
            if let Ok(template) = engine.compile("fuzz", &source, true) {
                let mut variables = Variables::new([("x", "1")]);
                let _ = engine.render(&template, &mut variables, "fuzz@x.example");
            }
        }
    }
}
