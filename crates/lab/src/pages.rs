//! HTML pages. Everything that came from the database or a request is
//! escaped.

use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML).
pub fn page(site: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{} - {site}</title>\
         <link rel=\"stylesheet\" href=\"/static/app.css\"><script src=\"/static/app.js\" defer></script></head>\
         <body><header><img src=\"/static/logo.svg\" alt=\"\"> <a href=\"/\">{site}</a></header>\n<main>\n{body}\n</main></body></html>\n",
        escape(title)
    )
}

/// A page of the fund listing: each fund linked by its listing id, and
/// the next page (`rel="next"`) unless this is the last.
pub fn listing(
    rows: &[(i64, String)],
    page: i64,
    next: Option<i64>,
    slug: impl Fn(i64) -> String,
) -> String {
    let mut body = format!("<h1>Funds, page {}</h1>\n<ul class=\"funds\">\n", page + 1);
    for (id, title) in rows {
        body.push_str(&format!(
            "<li><a class=\"fund\" href=\"/funds/{}\">{}</a></li>\n",
            slug(*id),
            escape(title)
        ));
    }
    body.push_str("</ul>\n");
    if let Some(n) = next {
        body.push_str(&format!(
            "<a rel=\"next\" href=\"/funds?page={n}\">Next</a>\n"
        ));
    }
    self::page("Fundfill", "Funds", &body)
}

/// The page a framework shows when a request failed inside it: with a 200,
/// as the incident's framework did.
pub fn error_occurred(site: &str) -> String {
    page(
        site,
        "Error",
        "<div class=\"banner\">An error has occurred. Please try again.</div>",
    )
}

/// A fund as pages show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Fund {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// One line about it.
    pub summary: String,
    /// Goal, in dollars.
    pub goal: i64,
    /// Raised so far.
    pub raised: i64,
    /// Pledges so far.
    pub backers: i64,
}

/// A recent pledge, with the backer's name.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Backer {
    /// Pledge id.
    pub id: i64,
    /// Backer's name.
    pub name: String,
    /// Amount.
    pub amount: i64,
}

fn top_list(out: &mut String, top: &[(i64, String, i64)]) {
    out.push_str("<ol class=\"top\">");
    for (id, title, raised) in top {
        let _ = write!(
            out,
            "<li><a href=\"/funds/{id}\">{}</a> ${raised}</li>",
            escape(title)
        );
    }
    out.push_str("</ol>");
}

/// The home page: the featured fund, then the top funds.
pub fn home(featured: &Fund, top: &[(i64, String, i64)]) -> String {
    let mut body = format!(
        "<section class=\"featured\" data-fund=\"{}\"><h1 id=\"featured\">{}</h1><p>{}</p>\
         <p>${} raised of ${} by {} backers</p><a href=\"/funds/{}\">Pledge</a></section>\n",
        featured.id,
        escape(&featured.title),
        escape(&featured.summary),
        featured.raised,
        featured.goal,
        featured.backers,
        featured.id
    );
    top_list(&mut body, top);
    page("Fundfill", "Home", &body)
}

/// A fund's page, with the top funds aside.
pub fn fund(f: &Fund, recent: &[Backer], top: &[(i64, String, i64)]) -> String {
    let mut body = format!(
        "<h1 class=\"fund\" data-fund=\"{}\">{}</h1><p>{}</p><p class=\"raised\">${} raised of ${} by {} backers</p><ul class=\"backers\">",
        f.id,
        escape(&f.title),
        escape(&f.summary),
        f.raised,
        f.goal,
        f.backers
    );
    for b in recent {
        let _ = write!(body, "<li>{} pledged ${}</li>", escape(&b.name), b.amount);
    }
    body.push_str("</ul><aside>");
    top_list(&mut body, top);
    body.push_str("</aside>");
    page("Fundfill", &f.title, &body)
}

/// A lesson.
pub fn lesson(title: &str, fund_title: &str, text: &str) -> String {
    page(
        "Fundfill",
        title,
        &format!(
            "<article class=\"lesson\"><h1>{}</h1><p class=\"fund\">For {}</p><p>{}</p></article>",
            escape(title),
            escape(fund_title),
            escape(text)
        ),
    )
}

/// The other tenant's site: every path shows its one page.
pub fn bounty() -> String {
    page(
        "Bounty Board",
        crate::db::OTHER_TITLE,
        &format!(
            "<section class=\"featured\" data-fund=\"2\"><h1 id=\"featured\">{}</h1>\
             <p>A reward for whoever finds the Bay to Breakers runner.</p></section>",
            crate::db::OTHER_TITLE
        ),
    )
}
