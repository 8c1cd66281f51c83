//! The docs page: Swagger UI at `/docs/`, served entirely by the api (no
//! CDN: it must work on a machine without network), and linked from `/`.

use crate::harness::Api;

fn content_type(answer: &crate::harness::Answer) -> &str {
    answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The values that follow `name` (`src="`, `href="`) in `html`.
fn attributes<'a>(html: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    html.split(name)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
}

#[tokio::test]
async fn swagger_ui_is_served_locally_and_linked_from_the_root() {
    let api = Api::spawn().await;

    let root = api.get("/").await;
    assert_eq!(root.status, 200, "{}", root.text);
    assert_eq!(root.body["docs"], "/docs/");
    assert_eq!(root.body["openapi"], "/openapi.json");

    let bare = api.get("/docs").await;
    assert_eq!(bare.status, 308);
    assert_eq!(bare.headers["location"], "docs/");

    let page = api.get("/docs/").await;
    assert_eq!(page.status, 200);
    assert!(
        content_type(&page).starts_with("text/html"),
        "{}",
        content_type(&page)
    );
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    // Every script, stylesheet and icon is one of the api's own files.
    let assets = attributes(&page.text, "src=\"")
        .chain(attributes(&page.text, "href=\""))
        .collect::<Vec<_>>();
    assert!(assets.contains(&"./swagger-ui-bundle.js"), "{assets:?}");
    for asset in assets {
        assert!(
            !asset.contains(':') && !asset.starts_with("//"),
            "the page loads {asset} from elsewhere"
        );
        let path = format!("/docs/{}", asset.trim_start_matches("./"));
        assert_eq!(api.get(&path).await.status, 200, "{path}");
    }

    let bundle = api.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status, 200);
    assert!(
        content_type(&bundle).contains("javascript"),
        "{}",
        content_type(&bundle)
    );
    assert!(bundle.text.len() > 100_000, "the bundle is the whole UI");

    // The UI renders this api's own document.
    let initializer = api.get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status, 200);
    assert!(
        initializer.text.contains("\"/openapi.json\""),
        "{}",
        initializer.text
    );

    let missing = api.get("/docs/no-such-file.js").await;
    assert_eq!(missing.status, 404);
    assert_eq!(content_type(&missing), "application/problem+json");
}
