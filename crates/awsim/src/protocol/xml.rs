//! A minimal XML writer for AWS responses: elements, text, and escaping. The AWS wire formats need
//! nothing more (no attributes except the root's namespace, no mixed content).

use std::fmt::Write as _;

/// Builds an XML document element by element. Every `open` must be matched by a `close`.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
    stack: Vec<&'static str>,
}

impl XmlWriter {
    /// Starts a document whose root element carries `xmlns`.
    pub fn with_root(root: &'static str, xmlns: &str) -> Self {
        let mut w = XmlWriter {
            out: String::with_capacity(1024),
            stack: Vec::new(),
        };
        w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = write!(w.out, "<{root} xmlns=\"{}\">", escape(xmlns));
        w.stack.push(root);
        w
    }

    pub fn open(&mut self, tag: &'static str) -> &mut Self {
        let _ = write!(self.out, "<{tag}>");
        self.stack.push(tag);
        self
    }

    pub fn close(&mut self) -> &mut Self {
        let tag = self.stack.pop().expect("close without open");
        let _ = write!(self.out, "</{tag}>");
        self
    }

    /// `<tag>text</tag>`, with the text escaped.
    pub fn text(&mut self, tag: &str, text: impl std::fmt::Display) -> &mut Self {
        let text = text.to_string();
        let _ = write!(self.out, "<{tag}>{}</{tag}>", escape(&text));
        self
    }

    /// `text` when the value is present, nothing otherwise.
    pub fn opt_text<T: std::fmt::Display>(&mut self, tag: &str, text: Option<T>) -> &mut Self {
        if let Some(t) = text {
            self.text(tag, t);
        }
        self
    }

    /// A list: `<outer><item>..</item>...</outer>`, each item of text.
    pub fn text_list<I, T>(&mut self, outer: &'static str, item: &str, items: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: std::fmt::Display,
    {
        self.open(outer);
        for i in items {
            self.text(item, i);
        }
        self.close()
    }

    /// Closes every element still open and returns the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}

/// Escapes the five XML special characters.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_elements_are_closed_in_order_and_text_is_escaped() {
        let mut w = XmlWriter::with_root("R", "urn:x");
        w.open("A").text("B", "1 < 2 & 'q'").close();
        w.text_list("L", "member", ["x", "y"]);
        let doc = w.finish();
        assert!(doc.ends_with(
            "<R xmlns=\"urn:x\"><A><B>1 &lt; 2 &amp; &apos;q&apos;</B></A><L><member>x</member><member>y</member></L></R>"
        ));
    }
}
