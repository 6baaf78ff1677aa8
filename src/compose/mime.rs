//! The body of a message in MIME form: text parts encoded as 7bit when RFC 2045 allows it and as
//! quoted-printable otherwise, and the multipart structure around them. What every recipient
//! shares is encoded once per campaign and copied in: attachments, inline images, and the
//! templates' own text, between which only the values are encoded per recipient.
//!
//! Written here rather than through lettre's builder because building a newsletter that way
//! spent most of its time encoding the same bytes again for every recipient. lettre still writes
//! the header section (RFC 2047 words, address syntax, folding).

use super::template::{Layout, Piece};

/// A quoted-printable line may hold 76 characters (RFC 2045 §6.7 rule 5). Stopping at 75 leaves
/// room for the `=` of a soft line break, so every line, soft or hard, fits.
const QP_LINE: usize = 75;

/// Longest line a 7bit body may carry, without its CRLF (RFC 5322 §2.1.1).
const MAX_7BIT_LINE: usize = 998;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// How a text part travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferEncoding {
    SevenBit,
    QuotedPrintable,
}

impl TransferEncoding {
    fn as_str(self) -> &'static str {
        match self {
            TransferEncoding::SevenBit => "7bit",
            TransferEncoding::QuotedPrintable => "quoted-printable",
        }
    }

    /// 7bit when RFC 2045 allows it (ASCII without NUL or bare CR, lines of at most 998
    /// octets) and the text cannot be mistaken for a boundary; quoted-printable otherwise.
    /// Most templates are ASCII, and 7bit keeps them readable and a third smaller.
    fn for_text(text: &str) -> TransferEncoding {
        if fits_seven_bit(text.as_bytes()) {
            TransferEncoding::SevenBit
        } else {
            TransferEncoding::QuotedPrintable
        }
    }
}

fn fits_seven_bit(bytes: &[u8]) -> bool {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())) {
        let line = &bytes[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Folded without early exit so that the compiler can check many bytes at once.
        let ascii = line.iter().fold(true, |ok, &byte| {
            ok & (byte.wrapping_sub(1) < 0x7f) & (byte != b'\r')
        });
        if line.len() > MAX_7BIT_LINE || !ascii {
            return false;
        }
        start = end + 1;
    }
    // Every boundary Herald writes starts with "=_" (see `Boundaries`), which quoted-printable
    // and base64 output can never contain; a 7bit body that does goes quoted-printable instead.
    memchr::memmem::find(bytes, b"=_").is_none()
}

/// Appends `text` as the body of a part in `encoding`, with CRLF line breaks and ending with a
/// line break.
fn write_text(
    out: &mut Vec<u8>,
    text: &str,
    encoding: TransferEncoding,
    pieces: Option<Pieces<'_>>,
) {
    match (encoding, pieces) {
        (TransferEncoding::SevenBit, _) => write_seven_bit(out, text.as_bytes()),
        (TransferEncoding::QuotedPrintable, Some(pieces)) => {
            write_quoted_printable_pieces(out, text, &pieces)
        }
        (TransferEncoding::QuotedPrintable, None) => write_quoted_printable(out, text.as_bytes()),
    }
}

fn write_seven_bit(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + bytes.len() / 32 + 2);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes) {
        let line = &bytes[start..end];
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
        start = end + 1;
    }
    if start < bytes.len() || bytes.is_empty() {
        out.extend_from_slice(&bytes[start..]);
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether a byte may stand for itself in quoted-printable (RFC 2045 §6.7 rules 2 and 3); space
/// and tab are only safe away from the end of a line, which the encoder sees to.
fn qp_literal(byte: u8) -> bool {
    (byte.wrapping_sub(b' ') < 95 && byte != b'=') | (byte == b'\t')
}

/// The end of the run of literal bytes that starts at `from`, found eight bytes at a time.
fn literal_run_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8).and_then(|word| word.try_into().ok()) {
        let escapes = escape_mask(u64::from_le_bytes(word));
        if escapes != 0 {
            return at + (escapes.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while bytes.get(at).is_some_and(|&byte| qp_literal(byte)) {
        at += 1;
    }
    at
}

/// The high bit of each byte of `word` that is not [`qp_literal`], computed for the eight bytes
/// at once. Every test is exact per byte (no carry crosses from one byte into the next), so the
/// lowest set bit marks the first byte to escape.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    let seven = word & LOW7;
    let non_ascii = word & HIGH;
    let control = !(seven + ONES * (0x80 - 0x20)) & HIGH & !non_ascii;
    let delete = (seven + ONES) & HIGH & !non_ascii;
    let equals = zero_bytes(word ^ (ONES * u64::from(b'=')));
    let tab = zero_bytes(word ^ (ONES * u64::from(b'\t')));
    non_ascii | (control & !tab) | delete | equals
}

struct QpWriter<'a> {
    out: &'a mut Vec<u8>,
    column: usize,
}

impl QpWriter<'_> {
    fn soft_break(&mut self) {
        self.out.extend_from_slice(b"=\r\n");
        self.column = 0;
    }

    fn literal(&mut self, mut run: &[u8]) {
        while !run.is_empty() {
            if self.column >= QP_LINE {
                self.soft_break();
            }
            let take = run.len().min(QP_LINE - self.column);
            self.out.extend_from_slice(&run[..take]);
            self.column += take;
            run = &run[take..];
        }
    }

    fn escaped(&mut self, byte: u8) {
        if self.column + 3 > QP_LINE {
            self.soft_break();
        }
        self.out.extend_from_slice(&[
            b'=',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0x0f)],
        ]);
        self.column += 3;
    }

    /// Ends the current line. Whitespace may not end an encoded line (a transport may strip
    /// it, rule 3), so a space or tab just written is rewritten as `=20` / `=09`.
    fn end_line(&mut self) {
        if self.column > 0
            && let Some(&last) = self.out.last()
            && (last == b' ' || last == b'\t')
        {
            self.out.pop();
            self.column -= 1;
            self.escaped(last);
        }
    }

    fn hard_break(&mut self) {
        self.end_line();
        self.out.extend_from_slice(b"\r\n");
        self.column = 0;
    }
}

impl QpWriter<'_> {
    /// Encodes `bytes`, whose CRLF, LF and lone CR are line breaks. Runs of literal bytes, most
    /// of any text, are found a word at a time and copied whole.
    fn encode(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            // A short line of literal bytes, the common case in text, is copied as it is.
            if self.column == 0 {
                let rest = &bytes[at..];
                // No need to look further than a line that could be copied.
                let window = &rest[..rest.len().min(QP_LINE + 3)];
                // Only a line with its line break: what follows the last one may continue it.
                let line_end = memchr::memchr(b'\n', window).unwrap_or(usize::MAX);
                let line = rest.get(..line_end).unwrap_or(&[]);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line_end != usize::MAX
                    && line.len() <= QP_LINE + 1
                    && literal_run_end(line, 0) == line.len()
                    && !line.ends_with(b" ")
                    && !line.ends_with(b"\t")
                {
                    self.out.extend_from_slice(line);
                    self.out.extend_from_slice(b"\r\n");
                    at += line_end + 1;
                    continue;
                }
            }
            let run_end = literal_run_end(bytes, at);
            self.literal(&bytes[at..run_end]);
            at = run_end;
            let Some(&byte) = bytes.get(at) else {
                break;
            };
            match byte {
                b'\r' => {
                    if bytes.get(at + 1) == Some(&b'\n') {
                        at += 1;
                    }
                    self.hard_break();
                }
                b'\n' => self.hard_break(),
                _ => self.escaped(byte),
            }
            at += 1;
        }
    }

    /// Appends text encoded beforehand from the start of a line: as it is when its first line
    /// fits after what the current line holds, else after a soft line break.
    fn encoded(&mut self, literal: &QpLiteral) {
        let fits = match literal.first_line {
            Some(first_line) => self.column + first_line <= QP_LINE + 1,
            None => self.column + literal.bytes.len() <= QP_LINE,
        };
        if !fits && self.column > 0 {
            self.soft_break();
        }
        self.out.extend_from_slice(&literal.bytes);
        self.column = match literal.first_line {
            Some(_) => literal.last_line,
            None => self.column + literal.bytes.len(),
        };
    }

    fn finish(&mut self, empty: bool) {
        if self.column > 0 || empty {
            self.hard_break();
        }
    }
}

/// Quoted-printable of `bytes`, whose CRLF, LF and lone CR are line breaks.
fn write_quoted_printable(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + bytes.len() / 8 + 8);
    let mut writer = QpWriter { out, column: 0 };
    writer.encode(bytes);
    writer.finish(bytes.is_empty());
}

/// A template's own text in quoted-printable, encoded once from the start of a line.
#[derive(Debug, Clone)]
struct QpLiteral {
    bytes: Vec<u8>,
    /// The length of the first line (with the `=` of a soft break) when there is more than one.
    first_line: Option<usize>,
    /// The length of the last line.
    last_line: usize,
}

impl QpLiteral {
    fn new(text: &str) -> QpLiteral {
        let mut bytes = Vec::new();
        let mut writer = QpWriter {
            out: &mut bytes,
            column: 0,
        };
        writer.encode(text.as_bytes());
        // What follows may be a line break: trailing white space is encoded now.
        writer.end_line();
        let last_line = writer.column;
        let first_line = memchr::memmem::find(&bytes, b"\r\n");
        QpLiteral {
            bytes,
            first_line,
            last_line,
        }
    }
}

/// The pieces of a template's own text, each encoded once per campaign.
#[derive(Debug, Clone)]
pub struct Literals {
    encoded: Vec<QpLiteral>,
}

impl Literals {
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Literals {
        Literals {
            encoded: texts.into_iter().map(QpLiteral::new).collect(),
        }
    }
}

/// Quoted-printable of a rendered text from its pieces: the template's own text copied as it
/// was encoded once, each value encoded once however often it recurs. Decodes to what
/// [`write_quoted_printable`] of the whole text decodes to.
fn write_quoted_printable_pieces(out: &mut Vec<u8>, text: &str, pieces: &Pieces<'_>) {
    out.reserve(text.len() + text.len() / 8 + 8);
    let mut writer = QpWriter { out, column: 0 };
    let mut values: Vec<Option<QpLiteral>> = Vec::new();
    let mut iter = pieces
        .layout
        .pieces(text)
        .filter(|(text, _)| !text.is_empty())
        .peekable();
    let mut after_cr = false;
    while let Some((piece, kind)) = iter.next() {
        let literal = match kind {
            Piece::Literal(number) => pieces.literals.encoded.get(number),
            Piece::Value(_) | Piece::Other => None,
        };
        match (literal, kind) {
            (Some(encoded), _) => writer.encoded(encoded),
            // A value without line breaks at its ends is encoded the first time it comes.
            (None, Piece::Value(number))
                if !piece.starts_with(['\r', '\n']) && !piece.ends_with(['\r', '\n']) =>
            {
                if values.len() <= number {
                    values.resize(number + 1, None);
                }
                if let Some(slot) = values.get_mut(number) {
                    writer.encoded(slot.get_or_insert_with(|| QpLiteral::new(piece)));
                }
            }
            (None, _) => {
                // A CR and LF split between a value and the template's text are one line
                // break, as in the whole text; the encoded text already holds its half.
                let mut value = piece.as_bytes();
                if after_cr {
                    value = value.strip_prefix(b"\n").unwrap_or(value);
                }
                let next_is_literal = iter
                    .peek()
                    .is_some_and(|(_, next)| matches!(next, Piece::Literal(_)));
                if next_is_literal && iter.peek().is_some_and(|(next, _)| next.starts_with('\n')) {
                    value = value.strip_suffix(b"\r").unwrap_or(value);
                }
                writer.encode(value);
                // The template's text that follows may start with a line break.
                writer.end_line();
            }
        }
        after_cr = piece.ends_with('\r');
    }
    writer.finish(text.is_empty());
}

/// A rendered text with how it was pieced together and its template's encoded text.
#[derive(Clone, Copy)]
pub struct Pieces<'a> {
    pub layout: &'a Layout,
    pub literals: &'a Literals,
}

/// The multipart boundaries of a campaign's messages. They start with `=_`, which neither
/// quoted-printable nor base64 can produce and which 7bit parts are checked against, so no
/// content can end a part early; the rest is random per campaign.
#[derive(Debug, Clone)]
pub struct Boundaries {
    base: String,
}

impl Boundaries {
    pub fn new() -> Boundaries {
        use std::hash::{BuildHasher, Hasher};
        let random = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        Boundaries {
            base: format!("=_{:016x}{:016x}", random(), random()),
        }
    }

    fn get(&self, kind: Multipart) -> String {
        format!("{}.{}", self.base, kind.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Multipart {
    Mixed,
    Alternative,
    Related,
}

impl Multipart {
    fn as_str(self) -> &'static str {
        match self {
            Multipart::Mixed => "mixed",
            Multipart::Alternative => "alternative",
            Multipart::Related => "related",
        }
    }
}

/// What goes in a message's body. `inline` and `attachments` hold complete parts (headers, a
/// blank line, the base64 body and its line break), formatted once per campaign.
pub struct BodyParts<'a> {
    pub text: &'a str,
    pub text_pieces: Option<Pieces<'a>>,
    pub html: Option<&'a str>,
    pub html_pieces: Option<Pieces<'a>>,
    pub inline: &'a [&'a [u8]],
    pub attachments: &'a [&'a [u8]],
}

/// Appends the body entity: its Content-Type (and for a single part its transfer encoding)
/// header lines, a blank line, and the content. The message's own header section, ending with
/// `MIME-Version`, goes before it.
pub fn write_body(out: &mut Vec<u8>, parts: &BodyParts<'_>, boundaries: &Boundaries) {
    if parts.attachments.is_empty() {
        write_content(out, parts, boundaries);
        return;
    }
    let mixed = boundaries.get(Multipart::Mixed);
    open_multipart(out, Multipart::Mixed, &mixed);
    delimiter(out, &mixed);
    write_content(out, parts, boundaries);
    for attachment in parts.attachments {
        delimiter(out, &mixed);
        out.extend_from_slice(attachment);
    }
    close_multipart(out, &mixed);
}

/// The readable content: the text alone, or text and HTML as alternatives, the HTML with its
/// inline images in multipart/related (RFC 2387: the HTML is the root and comes first).
fn write_content(out: &mut Vec<u8>, parts: &BodyParts<'_>, boundaries: &Boundaries) {
    let Some(html) = parts.html else {
        text_part(out, "plain", parts.text, parts.text_pieces);
        return;
    };
    let alternative = boundaries.get(Multipart::Alternative);
    open_multipart(out, Multipart::Alternative, &alternative);
    delimiter(out, &alternative);
    text_part(out, "plain", parts.text, parts.text_pieces);
    delimiter(out, &alternative);
    if parts.inline.is_empty() {
        text_part(out, "html", html, parts.html_pieces);
    } else {
        let related = boundaries.get(Multipart::Related);
        open_multipart(out, Multipart::Related, &related);
        delimiter(out, &related);
        text_part(out, "html", html, parts.html_pieces);
        for image in parts.inline {
            delimiter(out, &related);
            out.extend_from_slice(image);
        }
        close_multipart(out, &related);
    }
    close_multipart(out, &alternative);
}

fn text_part(out: &mut Vec<u8>, subtype: &str, text: &str, pieces: Option<Pieces<'_>>) {
    let encoding = TransferEncoding::for_text(text);
    out.extend_from_slice(b"Content-Type: text/");
    out.extend_from_slice(subtype.as_bytes());
    out.extend_from_slice(b"; charset=utf-8\r\nContent-Transfer-Encoding: ");
    out.extend_from_slice(encoding.as_str().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    write_text(out, text, encoding, pieces);
    // The line break before the next delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    out.extend_from_slice(b"\r\n");
}

fn open_multipart(out: &mut Vec<u8>, kind: Multipart, boundary: &str) {
    out.extend_from_slice(b"Content-Type: multipart/");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b";\r\n boundary=\"");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\"\r\n\r\n");
}

fn delimiter(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn close_multipart(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(text: &str) -> String {
        let mut out = Vec::new();
        write_quoted_printable(&mut out, text.as_bytes());
        String::from_utf8(out).unwrap()
    }

    fn seven(text: &str) -> Option<String> {
        fits_seven_bit(text.as_bytes()).then(|| {
            let mut out = Vec::new();
            write_seven_bit(&mut out, text.as_bytes());
            String::from_utf8(out).unwrap()
        })
    }

    /// The text as a decoder gives it back, with CRLF line breaks.
    fn decoded(encoded: &str) -> String {
        let bytes = quoted_printable::decode(encoded, quoted_printable::ParseMode::Strict).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    fn canonical(text: &str) -> String {
        let mut out = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .replace('\n', "\r\n");
        if !out.ends_with("\r\n") {
            out.push_str("\r\n");
        }
        out
    }

    fn assert_well_formed(encoded: &str) {
        assert!(encoded.ends_with("\r\n"), "{encoded:?}");
        for line in encoded.split("\r\n") {
            assert!(line.len() <= 76, "line of {}: {line:?}", line.len());
            assert!(!line.ends_with([' ', '\t']), "whitespace ends {line:?}");
            assert!(!line.contains(['\r', '\n']), "bare line break in {line:?}");
            assert!(line.bytes().all(|b| b == b'\t' || (32..127).contains(&b)));
        }
    }

    #[test]
    fn quoted_printable_round_trips() {
        for text in [
            "",
            "Zoë",
            "a = b",
            "trailing space \nand tab\t\r\nend ",
            "lone\rcr and\n\nblank lines",
            &"x".repeat(300),
            &"é".repeat(100),
            &format!("{}é{}", "a".repeat(73), "b".repeat(80)),
            "=_boundary look-alike",
        ] {
            let encoded = qp(text);
            assert_well_formed(&encoded);
            assert_eq!(
                decoded(&encoded),
                canonical(text),
                "{text:?} -> {encoded:?}"
            );
        }
    }

    #[test]
    fn quoted_printable_keeps_plain_text_readable() {
        assert_eq!(qp("Hello Zoë, 1+1=2\n"), "Hello Zo=C3=AB, 1+1=3D2\r\n");
        assert_eq!(qp("end "), "end=20\r\n");
    }

    #[test]
    fn quoted_printable_of_random_text_is_always_well_formed() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "ab =\t\r\n.é€😀-_".chars().collect();
        for _ in 0..2_000 {
            let length = (next() % 300) as usize;
            let text: String = (0..length)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let encoded = qp(&text);
            assert_well_formed(&encoded);
            assert_eq!(decoded(&encoded), canonical(&text), "{text:?}");
        }
    }

    #[test]
    fn seven_bit_bodies_keep_long_ascii_lines_and_refuse_the_rest() {
        assert_eq!(seven("a\nb").as_deref(), Some("a\r\nb\r\n"));
        assert_eq!(seven("a\r\nb\r\n").as_deref(), Some("a\r\nb\r\n"));
        let line = "x".repeat(998);
        assert_eq!(seven(&line), Some(format!("{line}\r\n")));
        assert_eq!(seven(&"x".repeat(999)), None);
        assert_eq!(seven("café"), None);
        assert_eq!(seven("bare\rcr"), None);
        assert_eq!(seven("nul\0"), None);
        assert_eq!(seven("a =_ b"), None, "could be taken for a boundary");
        assert_eq!(seven("").as_deref(), Some("\r\n"));
    }

    #[test]
    fn text_encoded_from_its_pieces_decodes_like_the_whole() {
        use crate::compose::template::{TemplateEngine, Variables};
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |limit: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % limit as u64) as usize
        };
        let alphabet: Vec<char> = "ab =\t\r\n.é😀-_<>&".chars().collect();
        let engine = TemplateEngine::new();
        for _ in 0..1_500 {
            let mut random_text = |max: usize| -> String {
                let length = next(max);
                (0..length)
                    .map(|_| alphabet[next(alphabet.len())])
                    .collect()
            };
            let mut source = String::new();
            let mut fields = Vec::new();
            for n in 0..4 {
                source.push_str(&random_text(120));
                source.push_str(&format!("{{{{ f{n} }}}}"));
                fields.push((format!("f{n}"), random_text(90)));
            }
            source.push_str(&random_text(120));
            let Ok(template) = engine.compile("t", &source, false) else {
                continue;
            };
            let mut variables =
                Variables::new(fields.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let (text, layout) = engine
                .render_laid_out(&template, &mut variables, "x@example.org")
                .unwrap();
            let literals = Literals::new(template.literals());
            let mut pieced = Vec::new();
            write_quoted_printable_pieces(
                &mut pieced,
                &text,
                &Pieces {
                    layout: &layout,
                    literals: &literals,
                },
            );
            let pieced = String::from_utf8(pieced).unwrap();
            assert_well_formed(&pieced);
            assert_eq!(decoded(&pieced), canonical(&text), "{source:?} {fields:?}");
        }
    }

    #[test]
    fn escape_mask_agrees_with_the_byte_test() {
        for byte in 0..=255u8 {
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = byte;
                let mask = escape_mask(u64::from_le_bytes(word));
                let expected = if qp_literal(byte) {
                    0
                } else {
                    0x80u64 << (position * 8)
                };
                assert_eq!(mask, expected, "byte {byte:#x} at {position}");
            }
        }
    }

    #[test]
    fn boundaries_cannot_occur_in_encoded_parts() {
        let boundaries = Boundaries::new();
        let boundary = boundaries.get(Multipart::Alternative);
        assert!(boundary.starts_with("=_"));
        let encoded = qp(&format!("--{boundary}\n{boundary}"));
        assert!(!encoded.contains(&boundary), "{encoded}");
    }
}
