//! A profile's YAML events with their positions, read with libyaml: the parser serde_yaml runs, so
//! a position found here is where serde_yaml saw the same node. serde_yaml reports a position
//! only with its first error; the profile's diagnosis (`diagnose`) needs the position of every
//! field it names. This is the profile module's only unsafe code: an owning wrapper over
//! unsafe-libyaml's C-style API, shaped as serde_yaml's own (src/libyaml/parser.rs).

use std::ffi::CStr;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// A place in the profile text, 1-based as serde_yaml and editors count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias {
        anchor: String,
    },
    Scalar {
        anchor: Option<String>,
        /// An explicit tag (`!!str`, `!foo`): it changes how serde_yaml reads the value.
        tagged: bool,
        value: String,
        /// Plain (unquoted, not a block scalar): only these resolve to numbers, booleans, null.
        plain: bool,
    },
    SequenceStart {
        anchor: Option<String>,
        tagged: bool,
    },
    SequenceEnd,
    MappingStart {
        anchor: Option<String>,
        tagged: bool,
    },
    MappingEnd,
}

/// The events of `input`, in order; `None` after the stream ends or at the first error.
pub struct Reader<'input> {
    /// Boxed because libyaml points into the parser from itself (its read handler's data): it
    /// must not move once initialised.
    parser: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>,
    done: bool,
    /// libyaml keeps a pointer to the input, not a copy.
    _input: PhantomData<&'input [u8]>,
}

impl<'input> Reader<'input> {
    pub fn new(input: &'input str) -> Reader<'input> {
        let mut parser = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
        let p = parser.as_mut_ptr();
        // SAFETY: `p` points to boxed memory that stays put for the reader's life; libyaml
        // initialises it, then reads `input`, which outlives the reader ('input).
        unsafe {
            if unsafe_libyaml::yaml_parser_initialize(p).fail {
                panic!("libyaml could not allocate its parser");
            }
            unsafe_libyaml::yaml_parser_set_encoding(p, unsafe_libyaml::YAML_UTF8_ENCODING);
            unsafe_libyaml::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
        }
        Reader {
            parser,
            done: false,
            _input: PhantomData,
        }
    }
}

impl Iterator for Reader<'_> {
    type Item = (Event, Pos);

    fn next(&mut self) -> Option<(Event, Pos)> {
        if self.done {
            return None;
        }
        let p = self.parser.as_mut_ptr();
        let mut raw = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new`; a successful parse fills `raw`, which is
        // read (its strings copied) and then freed exactly once.
        let item = unsafe {
            // After an error libyaml makes no more events; `done` stops the reader there first.
            if unsafe_libyaml::yaml_parser_parse(p, raw.as_mut_ptr()).fail {
                None
            } else {
                let e = raw.as_mut_ptr();
                let item = convert(&*e).map(|event| {
                    let mark = (*e).start_mark;
                    let pos = Pos {
                        line: mark.line as usize + 1,
                        column: mark.column as usize + 1,
                    };
                    (event, pos)
                });
                unsafe_libyaml::yaml_event_delete(e);
                item
            }
        };
        if matches!(item, None | Some((Event::StreamEnd, _))) {
            self.done = true;
        }
        item
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` (which panics rather than return an uninitialised one).
        unsafe { unsafe_libyaml::yaml_parser_delete(self.parser.as_mut_ptr()) }
    }
}

/// SAFETY: `e` is an event libyaml produced; its union member is the one its type names, and its
/// strings are NUL-terminated (anchors, tags) or `length` bytes long (a scalar's value).
unsafe fn convert(e: &unsafe_libyaml::yaml_event_t) -> Option<Event> {
    let text = |ptr: *const u8| -> Option<String> {
        (!ptr.is_null()).then(|| {
            // SAFETY: see the function's contract.
            let s = unsafe { CStr::from_ptr(ptr.cast()) };
            String::from_utf8_lossy(s.to_bytes()).into_owned()
        })
    };
    Some(match e.type_ {
        unsafe_libyaml::YAML_STREAM_START_EVENT => Event::StreamStart,
        unsafe_libyaml::YAML_STREAM_END_EVENT => Event::StreamEnd,
        unsafe_libyaml::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
        unsafe_libyaml::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd,
        unsafe_libyaml::YAML_ALIAS_EVENT => Event::Alias {
            anchor: text(unsafe { e.data.alias.anchor })?,
        },
        unsafe_libyaml::YAML_SCALAR_EVENT => {
            let s = unsafe { e.data.scalar };
            let bytes = unsafe { std::slice::from_raw_parts(s.value, s.length as usize) };
            Event::Scalar {
                anchor: text(s.anchor),
                tagged: !s.tag.is_null(),
                value: String::from_utf8_lossy(bytes).into_owned(),
                plain: s.style == unsafe_libyaml::YAML_PLAIN_SCALAR_STYLE,
            }
        }
        unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
            let s = unsafe { e.data.sequence_start };
            Event::SequenceStart {
                anchor: text(s.anchor),
                tagged: !s.tag.is_null(),
            }
        }
        unsafe_libyaml::YAML_SEQUENCE_END_EVENT => Event::SequenceEnd,
        unsafe_libyaml::YAML_MAPPING_START_EVENT => {
            let s = unsafe { e.data.mapping_start };
            Event::MappingStart {
                anchor: text(s.anchor),
                tagged: !s.tag.is_null(),
            }
        }
        unsafe_libyaml::YAML_MAPPING_END_EVENT => Event::MappingEnd,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<(Event, Pos)> {
        Reader::new(text).collect()
    }

    #[test]
    fn events_carry_their_positions() {
        let got = events("a: 1\nb:\n  - 'x'\n  - {c: d}\n");
        let at = |line, column| Pos { line, column };
        let scalar = |v: &str, plain| Event::Scalar {
            anchor: None,
            tagged: false,
            value: v.into(),
            plain,
        };
        let want = [
            (Event::StreamStart, at(1, 1)),
            (Event::DocumentStart, at(1, 1)),
            (
                Event::MappingStart {
                    anchor: None,
                    tagged: false,
                },
                at(1, 1),
            ),
            (scalar("a", true), at(1, 1)),
            (scalar("1", true), at(1, 4)),
            (scalar("b", true), at(2, 1)),
            (
                Event::SequenceStart {
                    anchor: None,
                    tagged: false,
                },
                at(3, 3),
            ),
            (scalar("x", false), at(3, 5)),
            (
                Event::MappingStart {
                    anchor: None,
                    tagged: false,
                },
                at(4, 5),
            ),
            (scalar("c", true), at(4, 6)),
            (scalar("d", true), at(4, 9)),
        ];
        assert_eq!(&got[..want.len()], &want[..]);
        assert_eq!(got.last().unwrap().0, Event::StreamEnd);
    }

    #[test]
    fn a_syntax_error_ends_the_events() {
        let got = events("a: [1, 2\nb: c\n");
        assert!(got.iter().all(|(e, _)| *e != Event::StreamEnd), "{got:?}");
    }
}
