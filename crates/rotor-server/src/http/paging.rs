//! Cursor pagination of every list, in Sentry's form: the answer is a JSON
//! array of at most `per_page` items (1 to 1000, default 100; `limit` is an
//! alias), and a `Link` header names the next page:
//!
//! ```text
//! Link: </api/0/events/?cursor=1234&per_page=100>; rel="next"; results="true"; cursor="1234"
//! ```
//!
//! `results="false"` (with an empty cursor) says there is no next page, as
//! Sentry's clients expect. Cursors are opaque to clients: the last item's
//! key (an id, a slug), so a page never skips or repeats an item that was
//! there when the first page was read. Query parameters a list does not
//! know are refused with `400` (each query struct denies unknown fields).

use axum::http::{header::LINK, HeaderName, HeaderValue};
use serde::Deserialize;

use super::error::ApiError;

/// A page of a JSON list of `T` with its `Link` header.
pub type Paged<T> = ([(HeaderName, HeaderValue); 1], axum::Json<Vec<T>>);

/// `cursor` and `per_page` (Sentry's name; `limit` is an alias), shared by
/// every list's query.
#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    /// Where the page starts (the `cursor` of the previous page's `Link`).
    pub cursor: Option<String>,
    /// Items per page.
    pub limit: Option<String>,
}

impl PageQuery {
    /// A page query from a list's `cursor`, `per_page` and `limit`.
    pub fn new(cursor: Option<String>, per_page: Option<String>, limit: Option<String>) -> Self {
        Self {
            cursor,
            limit: per_page.or(limit),
        }
    }

    /// The page size: 1 to 1000, default 100.
    pub fn limit(&self) -> Result<u32, ApiError> {
        limit_param(self.limit.as_deref())
    }

    /// The cursor parsed as `T`; a malformed one is a `400`.
    pub fn cursor<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse().map_err(|_| {
                    ApiError::field("cursor", "Invalid cursor: use the one a Link header gave.")
                })
            })
            .transpose()
    }
}

/// The `limit` query parameter of a list: 1 to 1000, default 100.
pub fn limit_param(limit: Option<&str>) -> Result<u32, ApiError> {
    match limit.map(str::parse::<u32>) {
        None => Ok(100),
        Some(Ok(n)) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field(
            "limit",
            "Must be a whole number from 1 to 1000.",
        )),
    }
}

/// Cuts `items` (read with `limit + 1`) to `limit` and answers the cursor
/// of the next page, if there is one.
pub fn cut<T>(
    mut items: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let next = items.last().map(key);
        (items, next)
    } else {
        (items, None)
    }
}

/// A page of an in-memory list ordered by `key`: the items after `cursor`.
pub fn page_sorted<T>(
    mut items: Vec<T>,
    cursor: Option<&str>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    items.sort_by_key(&key);
    if let Some(c) = cursor {
        items.retain(|i| key(i).as_str() > c);
    }
    items.truncate(limit as usize + 1);
    cut(items, limit, key)
}

/// The `Link` header of a page at `path`; `params` are the filters to keep.
pub fn link(
    path: &str,
    params: &[(&str, Option<String>)],
    limit: u32,
    next: Option<&str>,
) -> [(HeaderName, HeaderValue); 1] {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    query.append_pair("cursor", next.unwrap_or(""));
    query.append_pair("per_page", &limit.to_string());
    let value = format!(
        "<{path}?{}>; rel=\"next\"; results=\"{}\"; cursor=\"{}\"",
        query.finish(),
        next.is_some(),
        next.unwrap_or("")
    );
    [(
        LINK,
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
    )]
}
