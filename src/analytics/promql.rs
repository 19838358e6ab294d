//! PromQL evaluation, a documented subset (docs/prometheus.md), for the
//! Prometheus query API. `promql-parser` parses; [`compile`] checks the
//! expression against the subset (anything outside it is refused, naming
//! the construct, never answered wrongly) and lists the series it reads;
//! [`Query::instant`] and [`Query::range`] evaluate it step by step over the
//! raw samples, with the semantics of Prometheus 2.42's `promql/engine.go`
//! and `functions.go` (closed ranges, 5-minute lookback, extrapolated
//! `rate`/`increase`/`delta`). Aggregations go through [`across`], the
//! engine of `aggregate_series`. Pure: the caller reads the samples.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use promql_parser::label::Labels as Names;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR,
    T_LSS, T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUB, T_SUM, T_TOPK, TokenType,
};
use promql_parser::parser::{
    self, BinModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};

use super::across::{self, Grouping, Labels, NAME, Reduce};
use crate::domain::Selector;

/// Milliseconds since the epoch.
pub type Ms = i64;

/// Points per series in one range query, as Prometheus.
pub const MAX_STEPS: i64 = 11_000;
/// How far back an instant selector looks for a sample, as Prometheus.
pub const LOOKBACK: Ms = 5 * 60 * 1000;
/// Characters of an expression.
pub const MAX_CHARS: usize = 16 * 1024;
/// Selectors in an expression.
const MAX_SELECTORS: usize = 32;
/// Points in one answer (series × steps).
pub const MAX_POINTS: usize = 5_000_000;

#[derive(Debug, PartialEq)]
pub enum QueryError {
    /// 400 `bad_data`: malformed, or outside the subset.
    BadData(String),
    /// 422 `execution`: a limit or a matching rule, while evaluating.
    Execution(String),
    /// 503 `timeout`.
    Timeout(String),
}

fn bad(message: impl Into<String>) -> QueryError {
    QueryError::BadData(message.into())
}

/// A series as read: its labels (`__name__` included) and samples in time
/// order.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Arc<Labels>,
    pub samples: Vec<(Ms, f64)>,
}

/// What an expression reads: a selector's series over [from, to].
#[derive(Debug)]
pub struct Fetch {
    pub selector: Selector,
    pub from: Ms,
    pub to: Ms,
}

/// A compiled expression and what it reads; [`Query::instant`] and
/// [`Query::range`] take the series of each fetch, in order.
#[derive(Debug)]
pub struct Query {
    root: Node,
    pub fetches: Vec<Fetch>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Arc<Labels>,
    pub value: f64,
}

/// An instant query's answer.
#[derive(Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
}

/// A range query's answer: each series with its points, by labels.
pub type Matrix = Vec<(Arc<Labels>, Vec<(Ms, f64)>)>;

#[derive(Debug)]
enum Node {
    Number(f64),
    Time,
    Instant {
        fetch: usize,
        offset: Ms,
    },
    OverTime {
        func: OverTime,
        fetch: usize,
        range: Ms,
        offset: Ms,
        param: Option<Box<Node>>,
    },
    Math {
        func: Math,
        arg: Box<Node>,
        params: Vec<Node>,
    },
    HistogramQuantile {
        q: Box<Node>,
        arg: Box<Node>,
    },
    ToVector(Box<Node>),
    ToScalar(Box<Node>),
    Sort {
        arg: Box<Node>,
        desc: bool,
    },
    Aggregate {
        op: Agg,
        grouping: Grouping,
        param: Option<Box<Node>>,
        arg: Box<Node>,
    },
    Binary {
        op: TokenType,
        lhs: Box<Node>,
        rhs: Box<Node>,
        matching: Matching,
        return_bool: bool,
    },
    Neg(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OverTime {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
    Stddev,
    Stdvar,
    Present,
    Quantile,
    Changes,
    Resets,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Math {
    Abs,
    Ceil,
    Floor,
    Exp,
    Ln,
    Log2,
    Log10,
    Sqrt,
    Sgn,
    Round,
    Clamp,
    ClampMin,
    ClampMax,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Reduce(Reduce),
    Stdvar,
    Group,
    Topk,
    Bottomk,
}

/// Vector matching: `on` (Include) or `ignoring` (Exclude) labels, and the
/// cardinality with its `group_left`/`group_right` labels.
#[derive(Debug)]
struct Matching {
    on: bool,
    labels: Vec<String>,
    card: Card,
}

#[derive(Debug, PartialEq)]
enum Card {
    OneToOne,
    ManyToOne(Vec<String>),
    OneToMany(Vec<String>),
    ManyToMany,
}

fn names(l: &Names) -> Vec<String> {
    l.labels.clone()
}

fn duration_ms(d: std::time::Duration) -> Ms {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn offset_ms(o: &Option<Offset>) -> Ms {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    }
}

/// Parses `text` and checks it against the subset; the fetches cover
/// evaluation at every time in [start, end].
pub fn compile(text: &str, start: Ms, end: Ms) -> Result<Query, QueryError> {
    if text.chars().count() > MAX_CHARS {
        return Err(bad(format!(
            "the expression is {} characters, past the limit of {MAX_CHARS}",
            text.chars().count()
        )));
    }
    let expr = parser::parse(text).map_err(|e| bad(format!("invalid expression: {e}")))?;
    let mut c = Compiler {
        fetches: Vec::new(),
        start,
        end,
    };
    let root = c.node(&expr)?;
    Ok(Query {
        root,
        fetches: c.fetches,
    })
}

struct Compiler {
    fetches: Vec<Fetch>,
    start: Ms,
    end: Ms,
}

impl Compiler {
    fn select(&mut self, vs: &VectorSelector, window: Ms) -> Result<(usize, Ms), QueryError> {
        if vs.at.is_some() {
            return Err(bad("the @ modifier is not supported by this server"));
        }
        if self.fetches.len() >= MAX_SELECTORS {
            return Err(bad(format!(
                "more than {MAX_SELECTORS} selectors in one expression"
            )));
        }
        let offset = offset_ms(&vs.offset);
        let selector = Selector::from_vector_selector(vs.clone())
            .map_err(|e| bad(format!("invalid selector: {e}")))?;
        self.fetches.push(Fetch {
            selector,
            from: self.start.saturating_sub(offset).saturating_sub(window),
            to: self.end.saturating_sub(offset),
        });
        Ok((self.fetches.len() - 1, offset))
    }

    fn boxed(&mut self, e: &Expr) -> Result<Box<Node>, QueryError> {
        Ok(Box::new(self.node(e)?))
    }

    fn node(&mut self, e: &Expr) -> Result<Node, QueryError> {
        Ok(match e {
            Expr::NumberLiteral(n) => Node::Number(n.val),
            Expr::Paren(p) => self.node(&p.expr)?,
            Expr::Unary(u) => Node::Neg(self.boxed(&u.expr)?),
            Expr::VectorSelector(vs) => {
                let (fetch, offset) = self.select(vs, LOOKBACK)?;
                Node::Instant { fetch, offset }
            }
            Expr::StringLiteral(_) => {
                return Err(bad("string literals are not supported by this server"));
            }
            Expr::MatrixSelector(_) => {
                return Err(bad(
                    "a range vector is an argument of a function such as rate(); it cannot be \
                     the result of a query here",
                ));
            }
            Expr::Subquery(_) => return Err(bad("subqueries are not supported by this server")),
            Expr::Extension(_) => return Err(bad("extensions are not supported")),
            Expr::Call(call) => self.call(call.func.name, &call.args.args)?,
            Expr::Aggregate(a) => {
                let op = match a.op.id() {
                    T_SUM => Agg::Reduce(Reduce::Sum),
                    T_AVG => Agg::Reduce(Reduce::Avg),
                    T_MIN => Agg::Reduce(Reduce::Min),
                    T_MAX => Agg::Reduce(Reduce::Max),
                    T_COUNT => Agg::Reduce(Reduce::Count),
                    T_STDDEV => Agg::Reduce(Reduce::Stddev),
                    // The φ is read per step; the reduction takes it then.
                    T_QUANTILE => Agg::Reduce(Reduce::Quantile(0.0)),
                    T_STDVAR => Agg::Stdvar,
                    T_GROUP => Agg::Group,
                    T_TOPK => Agg::Topk,
                    T_BOTTOMK => Agg::Bottomk,
                    _ => {
                        return Err(bad(format!(
                            "the aggregation {} is not supported by this server",
                            a.op
                        )));
                    }
                };
                let grouping = match &a.modifier {
                    None => Grouping::By(vec![]),
                    Some(LabelModifier::Include(l)) => Grouping::By(names(l)),
                    Some(LabelModifier::Exclude(l)) => Grouping::Without(names(l)),
                };
                let param = match &a.param {
                    Some(p) => Some(self.boxed(p)?),
                    None => None,
                };
                Node::Aggregate {
                    op,
                    grouping,
                    param,
                    arg: self.boxed(&a.expr)?,
                }
            }
            Expr::Binary(b) => {
                let op = b.op;
                if !matches!(
                    op.id(),
                    T_ADD
                        | T_SUB
                        | T_MUL
                        | T_DIV
                        | T_MOD
                        | T_POW
                        | T_ATAN2
                        | T_EQLC
                        | T_NEQ
                        | T_GTR
                        | T_LSS
                        | T_GTE
                        | T_LTE
                        | T_LAND
                        | T_LOR
                        | T_LUNLESS
                ) {
                    return Err(bad(format!(
                        "the operator {op} is not supported by this server"
                    )));
                }
                let (matching, return_bool) = matching(b.modifier.as_ref(), op)?;
                Node::Binary {
                    op,
                    lhs: self.boxed(&b.lhs)?,
                    rhs: self.boxed(&b.rhs)?,
                    matching,
                    return_bool,
                }
            }
        })
    }

    fn call(&mut self, name: &str, args: &[Box<Expr>]) -> Result<Node, QueryError> {
        let over_time = match name {
            "rate" => Some(OverTime::Rate),
            "increase" => Some(OverTime::Increase),
            "delta" => Some(OverTime::Delta),
            "irate" => Some(OverTime::Irate),
            "idelta" => Some(OverTime::Idelta),
            "avg_over_time" => Some(OverTime::Avg),
            "min_over_time" => Some(OverTime::Min),
            "max_over_time" => Some(OverTime::Max),
            "sum_over_time" => Some(OverTime::Sum),
            "count_over_time" => Some(OverTime::Count),
            "last_over_time" => Some(OverTime::Last),
            "stddev_over_time" => Some(OverTime::Stddev),
            "stdvar_over_time" => Some(OverTime::Stdvar),
            "present_over_time" => Some(OverTime::Present),
            "quantile_over_time" => Some(OverTime::Quantile),
            "changes" => Some(OverTime::Changes),
            "resets" => Some(OverTime::Resets),
            _ => None,
        };
        if let Some(func) = over_time {
            let (param, range) = match (func, args) {
                (OverTime::Quantile, [q, m]) => (Some(self.boxed(q)?), m),
                (_, [m]) => (None, m),
                _ => return Err(bad(format!("wrong number of arguments to {name}"))),
            };
            let Expr::MatrixSelector(ms) = range.as_ref() else {
                return Err(bad(format!(
                    "{name} takes a range vector selector such as x[5m] (subqueries are not \
                     supported by this server)"
                )));
            };
            let range = duration_ms(ms.range);
            let (fetch, offset) = self.select(&ms.vs, range)?;
            return Ok(Node::OverTime {
                func,
                fetch,
                range,
                offset,
                param,
            });
        }
        let math = match name {
            "abs" => Some(Math::Abs),
            "ceil" => Some(Math::Ceil),
            "floor" => Some(Math::Floor),
            "exp" => Some(Math::Exp),
            "ln" => Some(Math::Ln),
            "log2" => Some(Math::Log2),
            "log10" => Some(Math::Log10),
            "sqrt" => Some(Math::Sqrt),
            "sgn" => Some(Math::Sgn),
            "round" => Some(Math::Round),
            "clamp" => Some(Math::Clamp),
            "clamp_min" => Some(Math::ClampMin),
            "clamp_max" => Some(Math::ClampMax),
            _ => None,
        };
        if let Some(func) = math {
            let Some((first, rest)) = args.split_first() else {
                return Err(bad(format!("{name} takes a vector")));
            };
            return Ok(Node::Math {
                func,
                arg: self.boxed(first)?,
                params: rest
                    .iter()
                    .map(|p| self.node(p))
                    .collect::<Result<_, _>>()?,
            });
        }
        Ok(match (name, args) {
            ("histogram_quantile", [q, v]) => Node::HistogramQuantile {
                q: self.boxed(q)?,
                arg: self.boxed(v)?,
            },
            ("time", []) => Node::Time,
            ("vector", [s]) => Node::ToVector(self.boxed(s)?),
            ("scalar", [v]) => Node::ToScalar(self.boxed(v)?),
            ("sort", [v]) => Node::Sort {
                arg: self.boxed(v)?,
                desc: false,
            },
            ("sort_desc", [v]) => Node::Sort {
                arg: self.boxed(v)?,
                desc: true,
            },
            _ => {
                return Err(bad(format!(
                    "the function {name} is not supported by this server (docs/prometheus.md \
                     lists what is)"
                )));
            }
        })
    }
}

fn matching(m: Option<&BinModifier>, op: TokenType) -> Result<(Matching, bool), QueryError> {
    let set = op.is_set_operator();
    let Some(m) = m else {
        return Ok((
            Matching {
                on: false,
                labels: vec![],
                card: if set {
                    Card::ManyToMany
                } else {
                    Card::OneToOne
                },
            },
            false,
        ));
    };
    if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
        return Err(bad("fill modifiers are not supported by this server"));
    }
    let (on, labels) = match &m.matching {
        Some(LabelModifier::Include(l)) => (true, names(l)),
        Some(LabelModifier::Exclude(l)) => (false, names(l)),
        None => (false, vec![]),
    };
    let card = match &m.card {
        _ if set => Card::ManyToMany,
        VectorMatchCardinality::OneToOne => Card::OneToOne,
        VectorMatchCardinality::ManyToOne(l) => Card::ManyToOne(names(l)),
        VectorMatchCardinality::OneToMany(l) => Card::OneToMany(names(l)),
        VectorMatchCardinality::ManyToMany => Card::ManyToMany,
    };
    Ok((Matching { on, labels, card }, m.return_bool))
}

/// Evaluation at one time: the series read, and when to give up.
struct At<'a> {
    data: &'a [Vec<Series>],
    t: Ms,
    deadline: Instant,
}

impl Query {
    /// The value at `t`; `data` holds each fetch's series.
    pub fn instant(
        &self,
        data: &[Vec<Series>],
        t: Ms,
        deadline: Instant,
    ) -> Result<Value, QueryError> {
        let v = At { data, t, deadline }.eval(&self.root)?;
        if let Value::Vector(v) = &v {
            unique(v)?;
        }
        Ok(v)
    }

    /// The values at start, start + step, … up to end, by series.
    pub fn range(
        &self,
        data: &[Vec<Series>],
        (start, end, step): (Ms, Ms, Ms),
        deadline: Instant,
    ) -> Result<Matrix, QueryError> {
        let mut out: BTreeMap<Arc<Labels>, Vec<(Ms, f64)>> = BTreeMap::new();
        let mut points = 0usize;
        let mut t = start;
        while t <= end {
            let at = At { data, t, deadline };
            at.check()?;
            let samples = match at.eval(&self.root)? {
                Value::Scalar(v) => vec![Sample {
                    labels: Arc::new(Labels::new()),
                    value: v,
                }],
                Value::Vector(v) => v,
            };
            points += samples.len();
            if points > MAX_POINTS {
                return Err(QueryError::Execution(format!(
                    "the answer would hold more than {MAX_POINTS} points (series × steps): \
                     widen the step, narrow the range or the selectors"
                )));
            }
            for s in samples {
                let series = out.entry(s.labels).or_default();
                if series.last().is_some_and(|(last, _)| *last == t) {
                    return Err(duplicate());
                }
                series.push((t, s.value));
            }
            t += step;
        }
        Ok(out.into_iter().collect())
    }
}

fn duplicate() -> QueryError {
    QueryError::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Prometheus refuses a vector with one label set twice (e.g. `rate` over
/// two metrics that differ only in name).
fn unique(v: &[Sample]) -> Result<(), QueryError> {
    let mut seen = HashSet::with_capacity(v.len());
    if v.iter().all(|s| seen.insert(&*s.labels)) {
        Ok(())
    } else {
        Err(duplicate())
    }
}

fn without_name(l: &Arc<Labels>) -> Arc<Labels> {
    if l.contains_key(NAME) {
        let mut l = (**l).clone();
        l.remove(NAME);
        Arc::new(l)
    } else {
        Arc::clone(l)
    }
}

/// The samples of `s` in [from, to].
fn window(s: &Series, from: Ms, to: Ms) -> &[(Ms, f64)] {
    let lo = s.samples.partition_point(|p| p.0 < from);
    let hi = s.samples.partition_point(|p| p.0 <= to);
    &s.samples[lo..hi.max(lo)]
}

impl At<'_> {
    fn check(&self) -> Result<(), QueryError> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout(
                "query timed out in expression evaluation".into(),
            ));
        }
        Ok(())
    }

    fn series(&self, fetch: usize) -> &[Series] {
        self.data.get(fetch).map(Vec::as_slice).unwrap_or_default()
    }

    fn scalar(&self, n: &Node) -> Result<f64, QueryError> {
        match self.eval(n)? {
            Value::Scalar(v) => Ok(v),
            Value::Vector(_) => Err(bad("expected a scalar argument, got an instant vector")),
        }
    }

    fn vector(&self, n: &Node) -> Result<Vec<Sample>, QueryError> {
        match self.eval(n)? {
            Value::Vector(v) => Ok(v),
            Value::Scalar(_) => Err(bad("expected an instant vector argument, got a scalar")),
        }
    }

    fn eval(&self, n: &Node) -> Result<Value, QueryError> {
        Ok(match n {
            Node::Number(v) => Value::Scalar(*v),
            Node::Time => Value::Scalar(self.t as f64 / 1000.0),
            Node::Instant { fetch, offset } => {
                let at = self.t - offset;
                Value::Vector(
                    self.series(*fetch)
                        .iter()
                        .filter_map(|s| {
                            let i = s.samples.partition_point(|p| p.0 <= at);
                            let (t, v) = *s.samples.get(i.checked_sub(1)?)?;
                            (t >= at - LOOKBACK).then(|| Sample {
                                labels: Arc::clone(&s.labels),
                                value: v,
                            })
                        })
                        .collect(),
                )
            }
            Node::OverTime {
                func,
                fetch,
                range,
                offset,
                param,
            } => {
                let q = match param {
                    Some(p) => self.scalar(p)?,
                    None => 0.0,
                };
                let to = self.t - offset;
                let from = to - range;
                let out: Vec<Sample> = self
                    .series(*fetch)
                    .iter()
                    .filter_map(|s| {
                        let value = over_time(*func, window(s, from, to), (from, to), q)?;
                        let labels = if *func == OverTime::Last {
                            Arc::clone(&s.labels)
                        } else {
                            without_name(&s.labels)
                        };
                        Some(Sample { labels, value })
                    })
                    .collect();
                unique(&out)?;
                Value::Vector(out)
            }
            Node::Math { func, arg, params } => {
                let v = self.vector(arg)?;
                let p = params
                    .iter()
                    .map(|p| self.scalar(p))
                    .collect::<Result<Vec<f64>, _>>()?;
                let p = |i: usize, default: f64| p.get(i).copied().unwrap_or(default);
                if *func == Math::Clamp && p(1, f64::NAN) < p(0, f64::NAN) {
                    return Ok(Value::Vector(vec![]));
                }
                let out: Vec<Sample> = v
                    .into_iter()
                    .map(|s| {
                        let x = s.value;
                        let value = match func {
                            Math::Abs => x.abs(),
                            Math::Ceil => x.ceil(),
                            Math::Floor => x.floor(),
                            Math::Exp => x.exp(),
                            Math::Ln => x.ln(),
                            Math::Log2 => x.log2(),
                            Math::Log10 => x.log10(),
                            Math::Sqrt => x.sqrt(),
                            Math::Sgn if x > 0.0 => 1.0,
                            Math::Sgn if x < 0.0 => -1.0,
                            Math::Sgn => x,
                            Math::Round => {
                                // Prometheus inverts first; ties round up.
                                let inverse = 1.0 / p(0, 1.0);
                                (x * inverse + 0.5).floor() / inverse
                            }
                            Math::Clamp => go_max(p(0, f64::NAN), go_min(p(1, f64::NAN), x)),
                            Math::ClampMin => go_max(p(0, f64::NAN), x),
                            Math::ClampMax => go_min(p(0, f64::NAN), x),
                        };
                        Sample {
                            labels: without_name(&s.labels),
                            value,
                        }
                    })
                    .collect();
                unique(&out)?;
                Value::Vector(out)
            }
            Node::HistogramQuantile { q, arg } => {
                let q = self.scalar(q)?;
                let v = self.vector(arg)?;
                let values: Vec<(Arc<Labels>, f64)> = v
                    .into_iter()
                    .filter(|s| s.labels.contains_key(across::LE))
                    .map(|s| (s.labels, s.value))
                    .collect();
                Value::Vector(
                    across::aggregate(
                        &values,
                        &Grouping::Without(vec![]),
                        Reduce::HistogramQuantile(q),
                    )
                    .into_iter()
                    .map(|g| Sample {
                        labels: Arc::new(g.labels),
                        value: g.value.unwrap_or(f64::NAN),
                    })
                    .collect(),
                )
            }
            Node::ToVector(s) => Value::Vector(vec![Sample {
                labels: Arc::new(Labels::new()),
                value: self.scalar(s)?,
            }]),
            Node::ToScalar(v) => {
                let v = self.vector(v)?;
                Value::Scalar(match v.as_slice() {
                    [one] => one.value,
                    _ => f64::NAN,
                })
            }
            Node::Sort { arg, desc } => {
                let mut v = self.vector(arg)?;
                // NaN last either way, as Prometheus.
                v.sort_by(|a, b| {
                    across::by_value(
                        Some(a.value).filter(|x| !x.is_nan()),
                        Some(b.value).filter(|x| !x.is_nan()),
                        *desc,
                    )
                });
                Value::Vector(v)
            }
            Node::Neg(inner) => match self.eval(inner)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(v) => {
                    let out: Vec<Sample> = v
                        .into_iter()
                        .map(|s| Sample {
                            labels: without_name(&s.labels),
                            value: -s.value,
                        })
                        .collect();
                    unique(&out)?;
                    Value::Vector(out)
                }
            },
            Node::Aggregate {
                op,
                grouping,
                param,
                arg,
            } => {
                let param = match param {
                    Some(p) => Some(self.scalar(p)?),
                    None => None,
                };
                let v = self.vector(arg)?;
                self.check()?;
                Value::Vector(aggregate(*op, grouping, param, v)?)
            }
            Node::Binary {
                op,
                lhs,
                rhs,
                matching,
                return_bool,
            } => {
                let (l, r) = (self.eval(lhs)?, self.eval(rhs)?);
                binary(*op, l, r, matching, *return_bool)?
            }
        })
    }
}

/// A range function over one series' samples in [from, to]; None where
/// Prometheus gives no element.
fn over_time(func: OverTime, s: &[(Ms, f64)], (from, to): (Ms, Ms), q: f64) -> Option<f64> {
    let (first, last) = (s.first()?, s.last()?);
    let values = || s.iter().map(|p| p.1);
    Some(match func {
        OverTime::Rate => extrapolated(s, (from, to), true, true)?,
        OverTime::Increase => extrapolated(s, (from, to), true, false)?,
        OverTime::Delta => extrapolated(s, (from, to), false, false)?,
        OverTime::Irate | OverTime::Idelta => {
            let [.., prev, last] = s else { return None };
            let interval = (last.0 - prev.0) as f64 / 1000.0;
            if interval == 0.0 {
                return None;
            }
            if func == OverTime::Idelta {
                last.1 - prev.1
            } else if last.1 < prev.1 {
                last.1 / interval
            } else {
                (last.1 - prev.1) / interval
            }
        }
        OverTime::Avg => {
            let (mut mean, mut c, mut n) = (0.0f64, 0.0, 0.0);
            for v in values() {
                n += 1.0;
                // An infinite mean stays so, unless NaN or the other
                // infinity comes (Inf - Inf would make it NaN).
                if mean.is_infinite()
                    && ((v.is_infinite() && (mean > 0.0) == (v > 0.0)) || (v.is_finite()))
                {
                    continue;
                }
                (mean, c) = kahan(v / n - mean / n, mean, c);
            }
            if mean.is_infinite() { mean } else { mean + c }
        }
        OverTime::Min => values().fold(first.1, |m, v| if v < m || m.is_nan() { v } else { m }),
        OverTime::Max => values().fold(first.1, |m, v| if v > m || m.is_nan() { v } else { m }),
        OverTime::Sum => {
            let (mut sum, mut c) = (0.0f64, 0.0);
            for v in values() {
                (sum, c) = kahan(v, sum, c);
            }
            if sum.is_infinite() { sum } else { sum + c }
        }
        OverTime::Count => s.len() as f64,
        OverTime::Last => last.1,
        OverTime::Present => 1.0,
        OverTime::Stddev | OverTime::Stdvar => {
            let (mut n, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for v in values() {
                n += 1.0;
                let delta = v - (mean + c_mean);
                (mean, c_mean) = kahan(delta / n, mean, c_mean);
                (aux, c_aux) = kahan(delta * (v - (mean + c_mean)), aux, c_aux);
            }
            let var = (aux + c_aux) / n;
            if func == OverTime::Stddev {
                var.sqrt()
            } else {
                var
            }
        }
        OverTime::Quantile => across::quantile(q, values().collect()).unwrap_or(f64::NAN),
        OverTime::Changes => s
            .windows(2)
            .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
            .count() as f64,
        OverTime::Resets => s.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64,
    })
}

/// Go's `math.Max` and `math.Min`: NaN wins, where Rust's ignore it.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Kahan–Babuška summation, as Prometheus' `kahanSumInc`.
fn kahan(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus' `extrapolatedRate`: the change over the samples (resets
/// added back for a counter), extrapolated towards the window's edges by
/// up to half an average interval, never below a counter's zero.
fn extrapolated(s: &[(Ms, f64)], (from, to): (Ms, Ms), counter: bool, rate: bool) -> Option<f64> {
    let [first, .., last] = s else { return None };
    let mut result = last.1 - first.1;
    if counter {
        let mut prev = first.1;
        for p in &s[1..] {
            if p.1 < prev {
                result += prev;
            }
            prev = p.1;
        }
    }
    let mut to_start = (first.0 - from) as f64 / 1000.0;
    let to_end = (to - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (s.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    let mut factor = interval / sampled;
    if rate {
        factor /= (to - from) as f64 / 1000.0;
    }
    Some(result * factor)
}

fn aggregate(
    op: Agg,
    grouping: &Grouping,
    param: Option<f64>,
    v: Vec<Sample>,
) -> Result<Vec<Sample>, QueryError> {
    let reduce = match op {
        Agg::Reduce(Reduce::Quantile(_)) => Reduce::Quantile(param.unwrap_or(f64::NAN)),
        Agg::Reduce(r) => r,
        Agg::Stdvar => Reduce::Stddev,
        Agg::Group => Reduce::Count,
        Agg::Topk | Agg::Bottomk => return Ok(rank(op == Agg::Topk, grouping, param, v)),
    };
    let values: Vec<(Arc<Labels>, f64)> = v.into_iter().map(|s| (s.labels, s.value)).collect();
    Ok(across::aggregate(&values, grouping, reduce)
        .into_iter()
        .map(|g| {
            let value = match (op, g.value) {
                (Agg::Group, _) => 1.0,
                (Agg::Stdvar, Some(sd)) => sd * sd,
                (_, value) => value.unwrap_or(f64::NAN),
            };
            Sample {
                labels: Arc::new(g.labels),
                value,
            }
        })
        .collect())
}

/// `topk`/`bottomk`: the k largest (smallest) of each group, with their
/// own labels, largest (smallest) first; NaN last.
fn rank(top: bool, grouping: &Grouping, k: Option<f64>, v: Vec<Sample>) -> Vec<Sample> {
    let k = k.unwrap_or(0.0);
    if k.is_nan() || k < 1.0 {
        return vec![];
    }
    let k = k.min(usize::MAX as f64) as usize;
    let mut groups: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for s in v {
        groups.entry(grouping.key(&s.labels)).or_default().push(s);
    }
    groups
        .into_values()
        .flat_map(|mut members| {
            members.sort_by(|a, b| {
                across::by_value(
                    Some(a.value).filter(|x| !x.is_nan()),
                    Some(b.value).filter(|x| !x.is_nan()),
                    top,
                )
            });
            members.truncate(k);
            members
        })
        .collect()
}

fn is_arithmetic(op: TokenType) -> bool {
    matches!(
        op.id(),
        T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW | T_ATAN2
    )
}

/// `op` on two numbers: the value, and whether a comparison holds.
fn elem(op: TokenType, l: f64, r: f64) -> (f64, bool) {
    match op.id() {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        _ => (l, l <= r),
    }
}

fn binary(
    op: TokenType,
    l: Value,
    r: Value,
    m: &Matching,
    return_bool: bool,
) -> Result<Value, QueryError> {
    let flag = |keep: bool| if keep { 1.0 } else { 0.0 };
    Ok(match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            let (v, keep) = elem(op, a, b);
            Value::Scalar(if op.is_comparison_operator() {
                flag(keep)
            } else {
                v
            })
        }
        (Value::Vector(v), Value::Scalar(s)) => {
            Value::Vector(with_scalar(op, v, s, false, return_bool)?)
        }
        (Value::Scalar(s), Value::Vector(v)) => {
            Value::Vector(with_scalar(op, v, s, true, return_bool)?)
        }
        (Value::Vector(l), Value::Vector(r)) => Value::Vector(if op.is_set_operator() {
            set(op, l, r, m)
        } else {
            vectors(op, l, r, m, return_bool)?
        }),
    })
}

fn with_scalar(
    op: TokenType,
    v: Vec<Sample>,
    s: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let drop = is_arithmetic(op) || return_bool;
    let out: Vec<Sample> = v
        .into_iter()
        .filter_map(|e| {
            let (l, r) = if swap { (s, e.value) } else { (e.value, s) };
            let (mut value, mut keep) = elem(op, l, r);
            if op.is_comparison_operator() && swap {
                value = r;
            }
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            keep.then(|| Sample {
                labels: if drop {
                    without_name(&e.labels)
                } else {
                    e.labels
                },
                value,
            })
        })
        .collect();
    if drop {
        unique(&out)?;
    }
    Ok(out)
}

/// The labels two series match on: `on` these, or all but these (and the
/// metric name).
fn signature(l: &Labels, m: &Matching) -> Vec<(String, String)> {
    l.iter()
        .filter(|(k, _)| {
            if m.on {
                m.labels.iter().any(|x| x == *k)
            } else {
                *k != NAME && !m.labels.iter().any(|x| x == *k)
            }
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn set(op: TokenType, l: Vec<Sample>, r: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let right: HashSet<_> = r.iter().map(|s| signature(&s.labels, m)).collect();
    match op.id() {
        T_LAND => l
            .into_iter()
            .filter(|s| right.contains(&signature(&s.labels, m)))
            .collect(),
        T_LUNLESS => l
            .into_iter()
            .filter(|s| !right.contains(&signature(&s.labels, m)))
            .collect(),
        _ => {
            let left: HashSet<_> = l.iter().map(|s| signature(&s.labels, m)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !left.contains(&signature(&s.labels, m))),
            );
            out
        }
    }
}

/// Arithmetic and comparisons between two vectors, one-to-one or with
/// `group_left`/`group_right`, as Prometheus' `VectorBinop`.
fn vectors(
    op: TokenType,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &Matching,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let (many, one, swapped, include) = match &m.card {
        Card::OneToMany(include) => (rhs, lhs, true, include.as_slice()),
        Card::ManyToOne(include) => (lhs, rhs, false, include.as_slice()),
        _ => (lhs, rhs, false, &[][..]),
    };
    let mut ones: HashMap<Vec<(String, String)>, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = signature(&s.labels, m);
        if ones.contains_key(&sig) {
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {sig:?} on the {} hand-side of the \
                 operation; many-to-many matching not allowed: matching labels must be unique \
                 on one side",
                if swapped { "left" } else { "right" }
            )));
        }
        ones.insert(sig, s);
    }
    let mut matched: HashMap<Vec<(String, String)>, HashSet<Arc<Labels>>> = HashMap::new();
    let mut out = Vec::new();
    for s in many {
        let sig = signature(&s.labels, m);
        let Some(o) = ones.get(&sig) else { continue };
        let (l, r) = if swapped {
            (o.value, s.value)
        } else {
            (s.value, o.value)
        };
        let (mut value, keep) = elem(op, l, r);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut labels = (*s.labels).clone();
        if is_arithmetic(op) || return_bool {
            labels.remove(NAME);
        }
        if m.card == Card::OneToOne {
            labels.retain(|k, _| m.labels.iter().any(|x| x == k) == m.on);
        }
        for name in include {
            match o.labels.get(name) {
                Some(v) if !v.is_empty() => labels.insert(name.clone(), v.clone()),
                _ => labels.remove(name),
            };
        }
        let labels = Arc::new(labels);
        let seen = matched.entry(sig).or_default();
        if !seen.insert(Arc::clone(&labels)) || (m.card == Card::OneToOne && seen.len() > 1) {
            return Err(QueryError::Execution(
                "multiple matches for labels: many-to-one matching must be explicit \
                 (group_left/group_right)"
                    .into(),
            ));
        }
        out.push(Sample { labels, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], samples: &[(Ms, f64)]) -> Series {
        Series {
            labels: Arc::new(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            samples: samples.to_vec(),
        }
    }

    fn at(q: &str, data: Vec<Vec<Series>>, t: Ms) -> Result<Value, QueryError> {
        compile(q, t, t)?.instant(&data, t, Instant::now() + std::time::Duration::from_secs(5))
    }

    fn one(v: Value) -> f64 {
        match v {
            Value::Scalar(x) => x,
            Value::Vector(v) => {
                assert_eq!(v.len(), 1, "{v:?}");
                v[0].value
            }
        }
    }

    #[test]
    fn scalars_and_grafanas_health_check() {
        assert_eq!(at("1+1", vec![], 0).unwrap(), Value::Scalar(2.0));
        assert_eq!(at("2 ^ 3 > bool 7", vec![], 0).unwrap(), Value::Scalar(1.0));
        assert_eq!(one(at("time()", vec![], 90_000).unwrap()), 90.0);
        assert_eq!(one(at("-vector(3)", vec![], 0).unwrap()), -3.0);
    }

    #[test]
    fn rate_extrapolates_as_prometheus() {
        // Samples every 10 s from 0 to 60 s of a counter that resets once;
        // rate over [0, 60] has both edges on samples: no extrapolation.
        let s = series(
            &[(NAME, "c"), ("job", "a")],
            &[
                (0, 10.0),
                (10_000, 20.0),
                (20_000, 30.0),
                (30_000, 5.0),
                (40_000, 15.0),
                (50_000, 25.0),
                (60_000, 35.0),
            ],
        );
        let inc = one(at("increase(c[1m])", vec![vec![s.clone()]], 60_000).unwrap());
        assert!((inc - 55.0).abs() < 1e-9, "{inc}");
        let rate = one(at("rate(c[1m])", vec![vec![s.clone()]], 60_000).unwrap());
        assert!((rate - 55.0 / 60.0).abs() < 1e-12, "{rate}");
        assert_eq!(
            one(at("irate(c[1m])", vec![vec![s.clone()]], 60_000).unwrap()),
            1.0
        );
        assert_eq!(
            one(at("resets(c[1m])", vec![vec![s.clone()]], 60_000).unwrap()),
            1.0
        );
        // At 65 s the window [5 s, 65 s] holds 10 s … 60 s: extrapolated by
        // 5 s at each end (under 1.1 × the 10 s average interval).
        let inc = one(at("increase(c[1m])", vec![vec![s]], 65_000).unwrap());
        assert!((inc - 45.0 * 60.0 / 50.0).abs() < 1e-9, "{inc}");
    }

    #[test]
    fn instant_selectors_look_back_five_minutes() {
        let s = series(&[(NAME, "g")], &[(0, 1.0)]);
        assert_eq!(one(at("g", vec![vec![s.clone()]], 300_000).unwrap()), 1.0);
        assert_eq!(
            at("g", vec![vec![s.clone()]], 300_001).unwrap(),
            Value::Vector(vec![])
        );
        assert_eq!(one(at("g offset 1m", vec![vec![s]], 360_000).unwrap()), 1.0);
    }

    #[test]
    fn aggregations_and_matching() {
        let data = || {
            vec![
                vec![
                    series(&[(NAME, "x"), ("job", "a"), ("i", "1")], &[(0, 1.0)]),
                    series(&[(NAME, "x"), ("job", "a"), ("i", "2")], &[(0, 3.0)]),
                    series(&[(NAME, "x"), ("job", "b"), ("i", "1")], &[(0, 10.0)]),
                ],
                vec![
                    series(&[(NAME, "y"), ("job", "a")], &[(0, 2.0)]),
                    series(&[(NAME, "y"), ("job", "b")], &[(0, 5.0)]),
                ],
            ]
        };
        let Value::Vector(v) = at("sum by (job) (x) / on(job) y", data(), 0).unwrap() else {
            panic!()
        };
        assert_eq!(
            v.iter().map(|s| s.value).collect::<Vec<_>>(),
            vec![2.0, 2.0]
        );
        let Value::Vector(v) = at("x / on(job) group_left y", data(), 0).unwrap() else {
            panic!()
        };
        assert_eq!(v.len(), 3);
        assert_eq!(v[2].labels.get("i").map(String::as_str), Some("1"));
        assert!(matches!(
            at("x / on(job) y", data(), 0),
            Err(QueryError::Execution(_))
        ));
        let Value::Vector(v) = at("topk(1, x)", data(), 0).unwrap() else {
            panic!()
        };
        assert_eq!((v.len(), v[0].value), (1, 10.0));
        assert_eq!(
            v[0].labels.get(NAME).map(String::as_str),
            Some("x"),
            "topk keeps the series' own labels"
        );
        assert_eq!(one(at("quantile(0.5, x)", data(), 0).unwrap()), 3.0);
        assert_eq!(one(at("count(x > 2)", data(), 0).unwrap()), 2.0);
        let Value::Vector(v) = at("x and on(job) (y > 3)", data(), 0).unwrap() else {
            panic!()
        };
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn outside_the_subset_is_refused_by_name() {
        for (q, says) in [
            (
                "label_replace(x, \"a\", \"b\", \"c\", \"d\")",
                "label_replace",
            ),
            ("rate(x[5m:1m])", "subqueries"),
            ("x @ 100", "@ modifier"),
            ("count_values(\"v\", x)", "count_values"),
            ("\"text\"", "string"),
            ("x[5m]", "range vector"),
            ("nope(x)", "invalid expression"),
            ("sum(x", "invalid expression"),
        ] {
            match compile(q, 0, 0) {
                Err(QueryError::BadData(m)) => assert!(m.contains(says), "{q}: {m}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn range_queries_group_points_by_series() {
        let s = series(&[(NAME, "g"), ("a", "1")], &[(0, 1.0), (60_000, 2.0)]);
        let q = compile("g * 2", 0, 120_000).unwrap();
        let m = q
            .range(
                &[vec![s]],
                (0, 120_000, 30_000),
                Instant::now() + std::time::Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(m.len(), 1);
        assert!(!m[0].0.contains_key(NAME));
        assert_eq!(
            m[0].1,
            vec![
                (0, 2.0),
                (30_000, 2.0),
                (60_000, 4.0),
                (90_000, 4.0),
                (120_000, 4.0)
            ]
        );
    }
}
