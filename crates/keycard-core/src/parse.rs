//! One pass over the decoded header and payload, borrowing from the input
//! wherever serde_json can: duplicate-member check at any depth without
//! building a tree, typed registered claims with strict JSON types, and the
//! roles read by their claim path. `Claims<T>` later deserializes the same
//! bytes once, into the user's type.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A string that borrows from the input unless it contains escapes.
#[derive(Debug)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Rejects duplicate member names at any depth without building a tree.
/// Up to 16 keys per object are tracked on the stack.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicates)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = NoDuplicates;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self, A::Error> {
        visit_unique_keys(map, |_, map| map.next_value::<NoDuplicates>().map(|_| ()))?;
        Ok(self)
    }
}

/// Whether `bytes` is one JSON value with no duplicate member names.
pub(crate) fn check_no_duplicates(bytes: &[u8]) -> bool {
    serde_json::from_slice::<NoDuplicates>(bytes).is_ok()
}

/// The JOSE header members keycard reads or refuses, read in one walk that
/// also refuses duplicate member names at any depth.
#[derive(Default)]
pub(crate) struct JoseHeader<'a> {
    pub(crate) alg: Option<Str<'a>>,
    pub(crate) kid: Option<Str<'a>>,
    pub(crate) typ: Option<Str<'a>>,
    pub(crate) cty: Option<Str<'a>>,
    pub(crate) crit: bool,
    pub(crate) enc: bool,
    pub(crate) zip: bool,
    pub(crate) b64: bool,
}

impl<'de> Deserialize<'de> for JoseHeader<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JoseHeader<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let mut h = JoseHeader::default();
                visit_unique_keys(map, |key, map| {
                    match key {
                        // `null` is present: it then fails the type check.
                        "alg" => h.alg = Some(map.next_value()?),
                        "kid" => h.kid = Some(map.next_value()?),
                        "typ" => h.typ = Some(map.next_value()?),
                        "cty" => h.cty = Some(map.next_value()?),
                        "crit" | "enc" | "zip" | "b64" => {
                            map.next_value::<NoDuplicates>()?;
                            match key {
                                "crit" => h.crit = true,
                                "enc" => h.enc = true,
                                "zip" => h.zip = true,
                                _ => h.b64 = true,
                            }
                        }
                        _ => {
                            map.next_value::<NoDuplicates>()?;
                        }
                    }
                    Ok(())
                })?;
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

/// A NumericDate: an integer or a finite number (fractions round down).
pub(crate) struct NumericDate(pub(crate) i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() {
                    // `as` saturates: 1e300 becomes i64::MAX.
                    Ok(NumericDate(v.floor() as i64))
                } else {
                    Err(E::custom("non-finite NumericDate"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `aud` as written: one string (no allocation), or an array of strings.
pub(crate) enum Audience<'a> {
    One(Str<'a>),
    Many(Vec<Str<'a>>),
}

impl Audience<'_> {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(v) => v.len(),
        }
    }
}

impl<'de> Deserialize<'de> for Audience<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Audience::One(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Audience::One(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(8));
                while let Some(s) = seq.next_element::<Str<'de>>()? {
                    out.push(s);
                }
                Ok(Audience::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads the roles at some claim paths in one pass: an array yields its
/// string elements, a string is split on whitespace, anything else yields
/// nothing. `alive` marks the paths (at most 64) that still match at this
/// `depth`; no allocation on the way down.
pub(crate) struct RolesAt<'p> {
    pub(crate) paths: &'p [Vec<String>],
    pub(crate) depth: usize,
    pub(crate) alive: u64,
    pub(crate) out: &'p mut Vec<String>,
}

impl RolesAt<'_> {
    /// Whether a path ends here (its value holds roles).
    fn at_leaf(&self) -> bool {
        self.paths
            .iter()
            .enumerate()
            .any(|(i, p)| self.alive & (1 << i) != 0 && p.len() == self.depth)
    }
}

/// The paths among `alive` whose segment at `depth` is `key`.
pub(crate) fn descend(paths: &[Vec<String>], alive: u64, depth: usize, key: &str) -> u64 {
    let mut next = 0;
    for (i, p) in paths.iter().enumerate().take(64) {
        if alive & (1 << i) != 0 && p.get(depth).is_some_and(|s| s == key) {
            next |= 1 << i;
        }
    }
    next
}

/// Every path alive.
pub(crate) fn all_paths(paths: &[Vec<String>]) -> u64 {
    match paths.len() {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

impl<'de> DeserializeSeed<'de> for RolesAt<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RolesAt<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        if self.at_leaf() {
            self.out.extend(v.split_whitespace().map(str::to_owned));
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        struct Elem(Option<String>);
        impl<'de> Deserialize<'de> for Elem {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct EV;
                impl<'de> Visitor<'de> for EV {
                    type Value = Elem;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("JSON")
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Elem, E> {
                        Ok(Elem(Some(v.to_owned())))
                    }
                    fn visit_bool<E>(self, _: bool) -> Result<Elem, E> {
                        Ok(Elem(None))
                    }
                    fn visit_i64<E>(self, _: i64) -> Result<Elem, E> {
                        Ok(Elem(None))
                    }
                    fn visit_u64<E>(self, _: u64) -> Result<Elem, E> {
                        Ok(Elem(None))
                    }
                    fn visit_f64<E>(self, _: f64) -> Result<Elem, E> {
                        Ok(Elem(None))
                    }
                    fn visit_unit<E>(self) -> Result<Elem, E> {
                        Ok(Elem(None))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Elem, A::Error> {
                        NoDuplicates.visit_seq(s).map(|_| Elem(None))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Elem, A::Error> {
                        NoDuplicates.visit_map(m).map(|_| Elem(None))
                    }
                }
                d.deserialize_any(EV)
            }
        }
        if self.at_leaf() {
            while let Some(Elem(e)) = seq.next_element::<Elem>()? {
                self.out.extend(e);
            }
        } else {
            NoDuplicates.visit_seq(seq)?;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let (paths, depth, alive, out) = (self.paths, self.depth, self.alive, self.out);
        visit_unique_keys(map, |key, map| {
            let next = descend(paths, alive, depth, key);
            if next == 0 {
                map.next_value::<NoDuplicates>().map(|_| ())
            } else {
                map.next_value_seed(RolesAt {
                    paths,
                    depth: depth + 1,
                    alive: next,
                    out: &mut *out,
                })
            }
        })
    }
}

/// Walk a map's entries, refusing duplicate keys (16 tracked on the stack).
fn visit_unique_keys<'de, A: MapAccess<'de>>(
    mut map: A,
    mut value: impl FnMut(&str, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let mut small: [Option<Str<'de>>; 16] = Default::default();
    let mut n = 0;
    let mut spill: Vec<Str<'de>> = Vec::new();
    while let Some(key) = map.next_key::<Str<'de>>()? {
        if small[..n]
            .iter()
            .flatten()
            .chain(spill.iter())
            .any(|k| k.0 == key.0)
        {
            return Err(de::Error::custom("duplicate member name"));
        }
        value(&key.0, &mut map)?;
        if n < small.len() {
            small[n] = Some(key);
            n += 1;
        } else {
            spill.push(key);
        }
    }
    Ok(())
}

/// The roles at `paths` in a (verified) JSON payload, in one walk.
pub(crate) fn roles_at(payload: &[u8], paths: &[Vec<String>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(payload);
    let _ = RolesAt {
        paths,
        depth: 0,
        alive: all_paths(paths),
        out: &mut out,
    }
    .deserialize(&mut de);
    out
}

/// A string claim kept with the verified payload: a span of its bytes, or
/// owned when the JSON string had escapes. No allocation on the common path.
#[derive(Debug, Clone)]
pub(crate) enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

impl Text {
    fn of(s: &Str<'_>, base: &[u8]) -> Self {
        if let Cow::Borrowed(b) = &s.0 {
            let start = (b.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
            if start <= base.len() && b.len() <= base.len() - start {
                if let (Ok(start), Ok(len)) = (u32::try_from(start), u32::try_from(b.len())) {
                    return Self::Span(start, len);
                }
            }
        }
        Self::Owned(s.0.as_ref().into())
    }

    /// The bytes, for comparisons (no UTF-8 check needed to compare).
    pub(crate) fn as_bytes<'a>(&'a self, payload: &'a [u8]) -> &'a [u8] {
        match self {
            Self::Span(start, len) => {
                let (s, l) = (*start as usize, *len as usize);
                payload.get(s..s + l).unwrap_or_default()
            }
            Self::Owned(s) => s.as_bytes(),
        }
    }

    pub(crate) fn as_str<'a>(&'a self, payload: &'a [u8]) -> &'a str {
        match self {
            Self::Span(start, len) => {
                let (s, l) = (*start as usize, *len as usize);
                payload
                    .get(s..s + l)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .unwrap_or("")
            }
            Self::Owned(s) => s,
        }
    }
}

/// `aud` kept with the payload: none, one (no allocation), or several.
#[derive(Debug, Clone, Default)]
pub(crate) enum Aud {
    #[default]
    None,
    One(Text),
    Many(Vec<Text>),
}

impl Aud {
    fn texts(&self) -> impl Iterator<Item = &Text> {
        let (one, many): (Option<&Text>, &[Text]) = match self {
            Self::None => (None, &[]),
            Self::One(t) => (Some(t), &[]),
            Self::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter())
    }

    /// The audiences' bytes, for comparisons.
    pub(crate) fn iter_bytes<'a>(
        &'a self,
        payload: &'a [u8],
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.texts().map(move |t| t.as_bytes(payload))
    }

    pub(crate) fn iter<'a>(&'a self, payload: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
        self.texts().map(move |t| t.as_str(payload))
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Self::None => true,
            Self::One(_) => false,
            Self::Many(v) => v.is_empty(),
        }
    }
}

/// The registered claims of a payload, kept with it without copying.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub(crate) iss: Option<Text>,
    pub(crate) sub: Option<Text>,
    pub(crate) aud: Aud,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) jti: Option<Text>,
    pub(crate) sid: Option<Text>,
    pub(crate) cnf_jkt: Option<Text>,
}

impl Facts {
    pub(crate) fn of(f: PayloadFacts<'_>, payload: &[u8]) -> Self {
        let text = |s: Option<Str<'_>>| s.map(|s| Text::of(&s, payload));
        let aud = match f.aud {
            None => Aud::None,
            Some(Audience::One(s)) => Aud::One(Text::of(&s, payload)),
            Some(Audience::Many(v)) if v.len() == 1 => Aud::One(Text::of(&v[0], payload)),
            Some(Audience::Many(v)) => Aud::Many(v.iter().map(|s| Text::of(s, payload)).collect()),
        };
        Self {
            iss: text(f.iss),
            sub: text(f.sub),
            aud,
            nbf: f.nbf.map(|n| n.0),
            iat: f.iat.map(|n| n.0),
            jti: text(f.jti),
            sid: text(f.sid),
            cnf_jkt: text(f.cnf_jkt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth_and_nesting_is_bounded() {
        let ok = br#"{"exp":1,"a":{"x":1},"b":[{"x":1},{"x":2}]}"#;
        assert!(payload_pass(ok).is_ok());
        for bad in [
            &br#"{"exp":1,"exp":2}"#[..],
            br#"{"exp":1,"a":1,"a":2}"#,
            br#"{"exp":1,"a":{"x":1,"x":1}}"#,
            br#"{"exp":1,"a":[{"x":1,"x":1}]}"#,
            b"[1]",
            b"{} x",
            b"",
        ] {
            assert!(
                payload_pass(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // More than 16 members: the spill-over list still sees duplicates.
        let many: String = (0..40).map(|i| format!("\"k{i}\":{i},")).collect();
        assert!(payload_pass(format!("{{{many}\"exp\":1}}").as_bytes()).is_ok());
        assert!(payload_pass(format!("{{{many}\"k3\":1}}").as_bytes()).is_err());
        let deep = format!("{{\"exp\":1,\"a\":{}}}", "[".repeat(100_000));
        assert!(payload_pass(deep.as_bytes()).is_err());
    }

    #[test]
    fn json_errors_never_quote_the_value() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"exp":"SECRET-VALUE-IN-EXP"}"#, "wrong type or value"),
            (br#"{"exp":1,"sub":12345678901}"#, "wrong type or value"),
            (br#"{"exp":1,"exp":2}"#, "duplicate member name"),
            (br#"{"exp":1,"sub":"SECRET-VALUE"#, "truncated JSON"),
        ];
        for (payload, want) in cases {
            let e = payload_pass(payload).err().expect("an error");
            let d = json_error_detail(&e);
            assert!(d.contains(want), "{d}");
            assert!(!d.contains("SECRET") && !d.contains("12345678901"), "{d}");
        }
    }

    #[test]
    fn duplicates_anywhere() {
        assert!(check_no_duplicates(br#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#));
        assert!(!check_no_duplicates(br#"{"a":1,"a":1}"#));
        assert!(!check_no_duplicates(br#"{"a":{"x":1,"x":2}}"#));
        assert!(!check_no_duplicates(br#"{"a":[{"x":1,"x":2}]}"#));
        assert!(
            !check_no_duplicates(br#"{"\u0061":1,"a":2}"#),
            "escaped duplicate"
        );
        let many: String = (0..40).map(|i| format!("\"k{i}\":1,")).collect();
        assert!(check_no_duplicates(
            format!("{{{}\"z\":1}}", many).as_bytes()
        ));
        assert!(
            !check_no_duplicates(format!("{{{}\"k3\":1}}", many).as_bytes()),
            "beyond 16 keys"
        );
        assert!(!check_no_duplicates(b"{} trailing"));
    }

    #[test]
    fn roles_by_path() {
        let p = br#"{"roles":["a",1,"b",{"x":1}],"scope":"r w","realm_access":{"roles":["ops"]},"role":"admin"}"#;
        let path = |s: &str| vec![s.split('.').map(str::to_owned).collect::<Vec<_>>()];
        assert_eq!(roles_at(p, &path("roles")), ["a", "b"]);
        assert_eq!(roles_at(p, &path("scope")), ["r", "w"]);
        assert_eq!(roles_at(p, &path("role")), ["admin"]);
        assert_eq!(roles_at(p, &path("realm_access.roles")), ["ops"]);
        assert!(roles_at(p, &path("nope")).is_empty());
        // Several paths in the one pass, sharing a prefix or not.
        let k = br#"{"realm_access":{"roles":["r1"]},"resource_access":{"api":{"roles":["c1"]},"other":{"roles":["x"]}}}"#;
        let both = vec![
            vec!["realm_access".to_owned(), "roles".to_owned()],
            vec![
                "resource_access".to_owned(),
                "api".to_owned(),
                "roles".to_owned(),
            ],
        ];
        assert_eq!(roles_at(k, &both), ["r1", "c1"]);
    }

    #[test]
    fn strict_registered_types() {
        let ok = payload_pass(br#"{"exp":1.9,"aud":["a","b"],"sub":"s","roles":["x"]}"#).unwrap();
        assert_eq!(ok.exp.unwrap().0, 1);
        assert_eq!(ok.aud.unwrap().len(), 2);
        for bad in [
            r#"{"exp":"1"}"#,
            r#"{"aud":1}"#,
            r#"{"aud":["a",1]}"#,
            r#"{"iss":null}"#,
            r#"{"sub":2}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"roles":{"x":1,"x":1}}"#,
            r#"[1]"#,
            r#"{} x"#,
        ] {
            assert!(payload_pass(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}

/// The one pass over a payload: duplicate members refused at any depth,
/// registered claims read with strict types (roles are read on demand).
pub(crate) struct PayloadPass;

/// What the pass found.
#[derive(Default)]
pub(crate) struct PayloadFacts<'a> {
    pub(crate) iss: Option<Str<'a>>,
    pub(crate) sub: Option<Str<'a>>,
    pub(crate) aud: Option<Audience<'a>>,
    pub(crate) exp: Option<NumericDate>,
    pub(crate) nbf: Option<NumericDate>,
    pub(crate) iat: Option<NumericDate>,
    pub(crate) jti: Option<Str<'a>>,
    pub(crate) sid: Option<Str<'a>>,
    /// `cnf.jkt` (RFC 9449 §6.1): the thumbprint of the key the token is
    /// bound to.
    pub(crate) cnf_jkt: Option<Str<'a>>,
}

/// `cnf` (RFC 7800): only `jkt` (RFC 9449) is a confirmation method keycard
/// can check. Any other member (`x5t#S256` of RFC 8705, `jwk`, `jku`,
/// `kid`, ...) binds the token to something keycard cannot verify, so the
/// token is refused rather than accepted as a plain bearer token.
struct Cnf<'a>(Option<Str<'a>>);

impl<'de> Deserialize<'de> for Cnf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cnf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a confirmation object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let mut jkt = None;
                visit_unique_keys(map, |key, map| {
                    if key == "jkt" {
                        jkt = Some(map.next_value::<Str<'de>>()?);
                    } else {
                        return Err(de::Error::custom(
                            "cnf names a confirmation method keycard cannot check",
                        ));
                    }
                    Ok(())
                })?;
                Ok(Cnf(jkt))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> DeserializeSeed<'de> for PayloadPass {
    type Value = PayloadFacts<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PayloadPass {
    type Value = PayloadFacts<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut facts = PayloadFacts::default();
        visit_unique_keys(map, |key, map| {
            match key {
                "iss" => facts.iss = Some(map.next_value()?),
                "sub" => facts.sub = Some(map.next_value()?),
                "aud" => facts.aud = Some(map.next_value()?),
                "exp" => facts.exp = Some(map.next_value()?),
                "nbf" => facts.nbf = Some(map.next_value()?),
                "iat" => facts.iat = Some(map.next_value()?),
                "jti" => facts.jti = Some(map.next_value()?),
                "sid" => facts.sid = Some(map.next_value()?),
                "cnf" => facts.cnf_jkt = map.next_value::<Cnf<'de>>()?.0,
                _ => {
                    map.next_value::<NoDuplicates>()?;
                }
            }
            Ok(())
        })?;
        Ok(facts)
    }
}

/// `cnf.jkt` from the JSON text of a `cnf` member, with the same checks as
/// [`payload_pass`] (an object, no duplicate members).
pub(crate) fn cnf_jkt(json: &str) -> Result<Option<Str<'_>>, serde_json::Error> {
    serde_json::from_str::<Cnf<'_>>(json).map(|c| c.0)
}

/// The claims of a payload that [`payload_pass`] accepted, as a JSON map.
/// The strict checks (an object, no duplicate members at any depth) already
/// ran in that pass, so this is a plain parse.
pub(crate) fn claims_object(payload: &[u8]) -> serde_json::Map<String, serde_json::Value> {
    from_payload(payload, std::marker::PhantomData).unwrap_or_default()
}

/// Run the pass; `Err` for anything but a JSON object without duplicates
/// whose registered claims have the right types.
pub(crate) fn payload_pass(payload: &[u8]) -> Result<PayloadFacts<'_>, serde_json::Error> {
    from_payload(payload, PayloadPass)
}

/// Read a payload with `seed`, and nothing after it. UTF-8 is checked once
/// for the whole payload rather than string by string (a JSON text is UTF-8
/// throughout); anything else is read from the bytes, for serde_json's own
/// error. Every reading of a payload goes through here: the pass, the
/// caller's claims type, the claims as JSON.
pub(crate) fn from_payload<'de, S: DeserializeSeed<'de>>(
    payload: &'de [u8],
    seed: S,
) -> Result<S::Value, serde_json::Error> {
    fn run<'de, R: serde_json::de::Read<'de>, S: DeserializeSeed<'de>>(
        mut de: serde_json::Deserializer<R>,
        seed: S,
    ) -> Result<S::Value, serde_json::Error> {
        let value = seed.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }
    match std::str::from_utf8(payload) {
        Ok(text) => run(serde_json::Deserializer::from_str(text), seed),
        Err(_) => run(serde_json::Deserializer::from_slice(payload), seed),
    }
}

/// A JSON error as a log-safe detail: what kind of problem and where, never
/// the value that caused it (serde's messages quote values, and a claim
/// value must not reach a log). A missing field keeps its name, which comes
/// from the type, not from the token.
pub(crate) fn json_error_detail(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = e.to_string();
    let what = match e.classify() {
        Category::Syntax => "not valid JSON".to_owned(),
        Category::Eof => "truncated JSON".to_owned(),
        Category::Io => "unreadable".to_owned(),
        Category::Data if msg.starts_with("duplicate member name") => {
            "duplicate member name".to_owned()
        }
        Category::Data if msg.starts_with("non-finite NumericDate") => {
            "non-finite NumericDate".to_owned()
        }
        Category::Data if msg.starts_with("missing field `") => msg
            .split(" at line")
            .next()
            .unwrap_or("missing field")
            .chars()
            .take(96)
            .collect(),
        Category::Data => {
            // "invalid type: string \"...\", expected u64": keep only the
            // expectation, which is the type's, when it quotes nothing.
            let expected = msg
                .split_once(", expected ")
                .map(|(_, x)| x.split(" at line").next().unwrap_or(""))
                .filter(|x| x.len() <= 64 && !x.contains(['"', '`', '\'']));
            match expected {
                Some(x) => format!("a member has the wrong type or value (expected {x})"),
                None => "a member has the wrong type or value".to_owned(),
            }
        }
    };
    format!("{what} at column {}", e.column())
}
