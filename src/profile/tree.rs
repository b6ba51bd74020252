//! A profile's YAML as a tree of positioned nodes: where each field path (`nodes[2].address`) is,
//! and the same document written out again without the entries already reported, so serde_yaml
//! can be asked for the next problem. Written out, every scalar keeps what decides how serde_yaml
//! reads it (plain or quoted), so the rewritten text deserialises exactly as the original would.
//!
//! Only a plain document is taken: one document, no tags, scalar keys, aliases of earlier
//! anchors. Anything else (never a profile netctl writes or documents) gives `None`, and the
//! caller reports serde_yaml's first error alone, as before.

use std::collections::HashMap;

use super::events::{Event, Pos, Reader};

/// Deeper than any profile (four levels); serde_yaml refuses 128.
const MAX_DEPTH: usize = 128;
/// Nodes made from the document, aliases expanded: bounds the work of a document that repeats an
/// anchor inside an anchor (serde_yaml refuses those too).
const MAX_NODES: usize = 4_000_000;

#[derive(Debug, Clone)]
pub struct Item {
    pub pos: Pos,
    pub node: Node,
    /// Reported already: left out when the document is written again.
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub enum Node {
    Scalar { value: String, plain: bool },
    Seq(Vec<Item>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// Where the key is: what a problem with the field points at.
    pub pos: Pos,
    pub value: Item,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// `nodes[2].address` -> [Key(nodes), Index(2), Key(address)]; `.` (serde's root) -> [].
pub fn segments(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        while let Some((index, after)) = rest.split_once(']') {
            match index.parse() {
                Ok(i) => out.push(Seg::Index(i)),
                Err(_) => return out,
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// The field path of `segs`, as validation names fields.
pub fn path_of(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The document of `text`, or `None` where it is not a plain one (see the module comment).
pub fn read(text: &str) -> Option<Item> {
    let mut b = Builder {
        events: Reader::new(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    if b.events.next()?.0 != Event::StreamStart || b.events.next()?.0 != Event::DocumentStart {
        return None;
    }
    let (first, pos) = b.events.next()?;
    let root = b.item(first, pos, 0)?;
    if b.events.next()?.0 != Event::DocumentEnd || b.events.next()?.0 != Event::StreamEnd {
        return None;
    }
    Some(root)
}

struct Builder<'a> {
    events: Reader<'a>,
    anchors: HashMap<String, Item>,
    nodes: usize,
}

impl Builder<'_> {
    fn item(&mut self, event: Event, pos: Pos, depth: usize) -> Option<Item> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.nodes += 1;
        let (node, anchor) = match event {
            Event::Alias { anchor } => {
                let mut item = self.anchors.get(&anchor)?.clone();
                self.nodes += count(&item);
                if self.nodes > MAX_NODES {
                    return None;
                }
                item.pos = pos;
                return Some(item);
            }
            Event::Scalar {
                anchor,
                tagged: false,
                value,
                plain,
            } => (Node::Scalar { value, plain }, anchor),
            Event::SequenceStart {
                anchor,
                tagged: false,
            } => {
                let mut items = Vec::new();
                loop {
                    match self.events.next()? {
                        (Event::SequenceEnd, _) => break,
                        (e, p) => items.push(self.item(e, p, depth + 1)?),
                    }
                }
                (Node::Seq(items), anchor)
            }
            Event::MappingStart {
                anchor,
                tagged: false,
            } => {
                let mut entries = Vec::new();
                loop {
                    let (key, key_pos) = match self.events.next()? {
                        (Event::MappingEnd, _) => break,
                        (
                            Event::Scalar {
                                anchor: None,
                                tagged: false,
                                value,
                                ..
                            },
                            p,
                        ) => (value, p),
                        _ => return None,
                    };
                    let (e, p) = self.events.next()?;
                    entries.push(Entry {
                        key,
                        pos: key_pos,
                        value: self.item(e, p, depth + 1)?,
                    });
                }
                (Node::Map(entries), anchor)
            }
            _ => return None,
        };
        if self.nodes > MAX_NODES {
            return None;
        }
        let item = Item {
            pos,
            node,
            removed: false,
        };
        if let Some(a) = anchor {
            self.anchors.insert(a, item.clone());
        }
        Some(item)
    }
}

fn count(item: &Item) -> usize {
    1 + match &item.node {
        Node::Scalar { .. } => 0,
        Node::Seq(items) => items.iter().map(count).sum(),
        Node::Map(entries) => entries.iter().map(|e| count(&e.value)).sum(),
    }
}

/// What `Item::find` found.
pub struct Found<'a> {
    pub path: Vec<Seg>,
    pub pos: Pos,
    pub item: Option<&'a mut Item>,
}

/// How a path step picks among a mapping's entries with one key (a key given twice).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    First,
    Last,
}

impl Item {
    /// Find `path` as the written-out document numbers it (removed items skipped): its path as
    /// the original document numbers it, the position of as much of it as is there (a field left
    /// out, a default, points at the mapping it belongs in), and the item when all of it is.
    pub fn find(&mut self, path: &[Seg], pick: Pick) -> Found<'_> {
        let mut item = Some(self);
        let mut pos = item.as_ref().expect("the root").pos;
        let mut original = Vec::new();
        for seg in path {
            let next = match (seg, item.take().map(|i| &mut i.node)) {
                (Seg::Key(k), Some(Node::Map(entries))) => {
                    let mut live = entries
                        .iter_mut()
                        .filter(|e| &e.key == k && !e.value.removed);
                    let e = match pick {
                        Pick::First => live.next(),
                        Pick::Last => live.last(),
                    };
                    e.map(|e| {
                        pos = e.pos;
                        &mut e.value
                    })
                }
                (Seg::Index(i), Some(Node::Seq(items))) => items
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, it)| !it.removed)
                    .nth(*i)
                    .map(|(n, it)| {
                        original.push(Seg::Index(n));
                        pos = it.pos;
                        it
                    }),
                _ => None,
            };
            match (seg, next) {
                (Seg::Key(k), Some(it)) => {
                    original.push(Seg::Key(k.clone()));
                    item = Some(it);
                }
                (Seg::Index(_), Some(it)) => item = Some(it),
                (_, None) => {
                    original.push(seg.clone());
                    item = None;
                }
            }
        }
        Found {
            path: original,
            pos,
            item,
        }
    }

    /// Rename the entry at `path` (which ends in a key) to `key`, unless its mapping has a `key`
    /// already: the field path as the original document numbers it, and the key's position.
    pub fn rename(&mut self, path: &[Seg], key: &str) -> Option<(Vec<Seg>, Pos)> {
        let (Seg::Key(old), parent) = path.split_last()? else {
            return None;
        };
        let found = self.find(parent, Pick::First);
        let Node::Map(entries) = &mut found.item?.node else {
            return None;
        };
        if entries.iter().any(|e| e.key == key && !e.value.removed) {
            return None;
        }
        let e = entries
            .iter_mut()
            .find(|e| &e.key == old && !e.value.removed)?;
        e.key = key.to_string();
        let mut original = found.path;
        original.push(Seg::Key(old.clone()));
        Some((original, e.pos))
    }

    /// The document again, block style, without removed items.
    pub fn write(&self) -> String {
        let mut out = String::new();
        match &self.node {
            Node::Scalar { .. } => {
                write_scalar(&self.node, &mut out);
                out.push('\n');
            }
            _ => write_collection(self, 0, &mut out),
        }
        out
    }
}

fn write_scalar(node: &Node, out: &mut String) {
    if let Node::Scalar { value, plain } = node {
        if *plain && !value.contains(['\n', '\r']) {
            // As written: serde_yaml resolves a plain scalar (null, true, 8472) from this text.
            out.push_str(value);
        } else {
            // Never resolved: a double-quoted string (JSON's escapes are YAML's) reads the same.
            out.push_str(&serde_json::to_string(value).expect("a string serialises"));
        }
    }
}

/// A value after `key:` or `-`: a scalar or an empty collection on the same line, else the
/// collection on the lines below, indented.
fn write_value(item: &Item, indent: usize, out: &mut String) {
    match &item.node {
        Node::Scalar { .. } => {
            out.push(' ');
            write_scalar(&item.node, out);
            out.push('\n');
        }
        Node::Seq(items) if items.iter().all(|i| i.removed) => out.push_str(" []\n"),
        Node::Map(entries) if entries.iter().all(|e| e.value.removed) => out.push_str(" {}\n"),
        _ => {
            out.push('\n');
            write_collection(item, indent + 2, out);
        }
    }
}

fn write_collection(item: &Item, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match &item.node {
        Node::Seq(items) => {
            for it in items.iter().filter(|i| !i.removed) {
                out.push_str(&pad);
                out.push('-');
                write_value(it, indent, out);
            }
        }
        Node::Map(entries) => {
            for e in entries.iter().filter(|e| !e.value.removed) {
                out.push_str(&pad);
                out.push_str(&serde_json::to_string(&e.key).expect("a string serialises"));
                out.push(':');
                write_value(&e.value, indent, out);
            }
        }
        Node::Scalar { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a: 1\nb:\n  - {c: d, e: [x, 'y']}\n  - c: f\n    e: []\n";

    #[test]
    fn paths_find_their_keys() {
        let mut t = read(DOC).unwrap();
        let mut at = |p: &str| {
            let pos = t.find(&segments(p), Pick::First).pos;
            (pos.line, pos.column)
        };
        assert_eq!(at("a"), (1, 1));
        assert_eq!(at("b[0].e"), (3, 12));
        assert_eq!(at("b[0].e[1]"), (3, 19));
        assert_eq!(at("b[1].e"), (5, 5));
        // A field the document leaves out: the mapping it belongs in.
        assert_eq!(at("b[1].z"), (4, 5));
        assert_eq!(path_of(&segments("b[1].e[0]")), "b[1].e[0]");
        assert_eq!(segments("."), []);
    }

    /// Written again, the document deserialises to the same value, scalars resolved alike
    /// (`1.30` stays a plain scalar; a quoted `'8472'` stays a string).
    #[test]
    fn the_document_written_again_reads_the_same() {
        for text in [
            DOC,
            "v: 1.30\nq: '8472'\nn:\nm: ~\nblock: |\n  two\n  lines\nl: [a, b]\nanchored: &x {k: 1}\nalias: *x\n",
            "- a\n- [b, {c: \"d\\te\"}]\n- {}\n",
        ] {
            let written = read(text).unwrap().write();
            let a: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
            let b: serde_yaml::Value = serde_yaml::from_str(&written).unwrap();
            assert_eq!(a, b, "{text}\n----\n{written}");
        }
    }

    #[test]
    fn removed_items_are_left_out_and_numbered_around() {
        let mut t = read("l: [a, b, c]\nm: {x: 1, y: 2}\n").unwrap();
        let found = t.find(&segments("l[1]"), Pick::First);
        assert_eq!(path_of(&found.path), "l[1]");
        found.item.unwrap().removed = true;
        // Written again, the old l[2] is l[1]: found as the original's l[2].
        let found = t.find(&segments("l[1]"), Pick::First);
        assert_eq!(
            (path_of(&found.path), found.pos.column),
            ("l[2]".to_string(), 11)
        );
        t.find(&segments("m.x"), Pick::First).item.unwrap().removed = true;
        // A key is renamed only where its mapping has none of the new name.
        assert!(t.rename(&segments("m.y"), "l").is_some());
        assert!(t.rename(&segments("l"), "m").is_none());
        t.rename(&segments("m.l"), "y").unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&t.write()).unwrap();
        assert_eq!(
            v,
            serde_yaml::from_str::<serde_yaml::Value>("l: [a, c]\nm: {y: 2}\n").unwrap()
        );
    }

    #[test]
    fn documents_not_taken() {
        for text in [
            "a: !!str 1\n",
            "a: 1\n---\nb: 2\n",
            "? [a]\n: 1\n",
            "a: *nope\n",
            "a: [1\n",
        ] {
            assert!(read(text).is_none(), "{text}");
        }
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(read(&deep).is_none());
    }
}
