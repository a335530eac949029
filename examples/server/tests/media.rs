//! Media over real HTTP: uploads of real images generated here, the
//! pipeline (type from the bytes, EXIF orientation, metadata stripped,
//! thumbnails), refusals that store nothing, caching headers, signed URLs,
//! avatars and covers, and the removal of uploads never attached.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::header::{
    HeaderMap, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use support::{settings, within, Resp, TestServer, User};

/// A server whose database and media directory live in `dir`, with `flags`.
async fn server_in(dir: &Path, flags: &[&str]) -> TestServer {
    let db = format!("sqlite://{}", dir.join("kith.db").display());
    let media = dir.join("media");
    let media = media.to_str().unwrap();
    let mut args = vec!["--database-url", &db, "--media-dir", media];
    args.extend_from_slice(flags);
    TestServer::with(settings(&args)).await
}

/// The files under `dir`, recursively, as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// The rows of the `media` table of the database in `dir`.
async fn media_rows(dir: &Path) -> i64 {
    let url = format!("sqlite://{}", dir.join("kith.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

/// An image of `width` x `height` encoded as `format`: left half red, right
/// half blue.
fn image_bytes(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

/// A PNG of pseudo-random pixels, which does not compress.
fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let image = RgbImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [r, g, b, _] = state.to_le_bytes();
        Rgb([r, g, b])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A JPEG with an APP1 Exif segment built by hand right after SOI: a
/// little-endian TIFF header, one IFD with the orientation tag (0x0112)
/// set to `orientation`, and some text a photo's metadata could hold.
fn jpeg_with_exif(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let jpeg = image_bytes(width, height, ImageFormat::Jpeg);
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD at offset 8
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // one value
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // padding of the value field
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    tiff.extend_from_slice(b"GPS 48.8584N 2.2945E secret location");
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&tiff);
    let length = u16::try_from(segment.len() + 2).unwrap();
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The CRC-32 of PNG chunks.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small PNG whose header declares `width` x `height` (a decompression
/// bomb would follow with data that inflates to that).
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(b"IHDR", &header);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

/// `POST /api/v1/media` with one part named `file`.
async fn upload_as(
    server: &TestServer,
    user: &User,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> Resp {
    let part = Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    upload_form(server, user, Form::new().part("file", part)).await
}

async fn upload_form(server: &TestServer, user: &User, form: Form) -> Resp {
    let request = server
        .http
        .post(server.api("/media"))
        .bearer_auth(&user.token)
        .multipart(form);
    let response = within("the upload", request.send()).await.unwrap();
    Resp::read(response).await
}

/// Uploads a PNG and returns the view.
async fn upload(server: &TestServer, user: &User, width: u32, height: u32) -> Value {
    let bytes = image_bytes(width, height, ImageFormat::Png);
    upload_as(server, user, bytes, "picture.png", "image/png")
        .await
        .ok(201)
}

/// GET of an absolute URL, without a token, returning the raw response.
async fn fetch(server: &TestServer, url: &str) -> reqwest::Response {
    within(url, server.http.get(url).send()).await.unwrap()
}

async fn fetch_image(server: &TestServer, url: &str) -> (HeaderMap, DynamicImage) {
    let response = fetch(server, url).await;
    assert_eq!(response.status(), 200, "{url}");
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let length = headers[CONTENT_LENGTH].to_str().unwrap().parse::<usize>();
    assert_eq!(length.unwrap(), bytes.len());
    (headers, image::load_from_memory(&bytes).unwrap())
}

/// A PNG whose name and declared type say JPEG is stored as the PNG its
/// bytes are: re-encoded, with a thumbnail of at most 320 pixels a side,
/// served with its type, length, an ETag and private caching through a
/// signed URL; `If-None-Match` answers 304.
#[tokio::test]
async fn uploads_are_typed_by_their_bytes_reencoded_and_thumbnailed() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bytes = image_bytes(800, 600, ImageFormat::Png);
    let view = upload_as(&server, &alice, bytes, "holiday.jpg", "image/jpeg")
        .await
        .ok(201);
    let media = &view["media"];
    assert_eq!(media["owner"], alice.id.as_str());
    assert_eq!(media["kind"], "image");
    assert_eq!(media["content_type"], "image/png");
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(800), Some(600))
    );
    assert_eq!(media["variants"], json!(["original", "thumbnail"]));
    assert_eq!(media["attachment"], Value::Null);
    assert!(media["expires_at"].is_string());
    assert!(view["urls_expire_at"].is_string());
    let original_url = view["original_url"].as_str().unwrap();
    assert!(original_url.contains("&sig="), "{original_url}");

    let (headers, image) = fetch_image(&server, original_url).await;
    assert_eq!((image.width(), image.height()), (800, 600));
    assert_eq!(headers[CONTENT_TYPE], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let cache = headers[CACHE_CONTROL].to_str().unwrap();
    let max_age: u64 = cache
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&max_age), "{cache}");
    let etag = headers[ETAG].to_str().unwrap().to_owned();

    let (_, thumbnail) = fetch_image(&server, view["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!((thumbnail.width(), thumbnail.height()), (320, 240));

    let again = server
        .http
        .get(original_url)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()[ETAG], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());

    // The owner reads the item (with fresh URLs); nobody else does.
    let id = media["id"].as_str().unwrap();
    let read = server
        .get(&format!("/media/{id}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(read["media"], *media);
    let bob = server.user("bob").await;
    server
        .get(&format!("/media/{id}"), &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .get_anon(&format!("/media/{id}"))
        .await
        .err(404, "not_found", None);

    // A small image's thumbnail is the image itself.
    let small = upload(&server, &alice, 100, 50).await;
    let (_, thumbnail) = fetch_image(&server, small["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!((thumbnail.width(), thumbnail.height()), (100, 50));
}

/// A JPEG whose EXIF says "rotate 90° clockwise" is stored upright, and
/// without its EXIF block (location included).
#[tokio::test]
async fn exif_orientation_is_applied_and_the_metadata_stripped() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bytes = jpeg_with_exif(40, 20, 6);
    assert!(bytes.windows(6).any(|w| w == b"Exif\0\0"));
    let view = upload_as(&server, &alice, bytes, "photo.jpg", "image/jpeg")
        .await
        .ok(201);
    assert_eq!(view["media"]["content_type"], "image/jpeg");
    assert_eq!(view["media"]["width"], 20);
    assert_eq!(view["media"]["height"], 40);
    let url = view["original_url"].as_str().unwrap();
    let response = fetch(&server, url).await;
    assert_eq!(response.headers()[CONTENT_TYPE], "image/jpeg");
    let stored = response.bytes().await.unwrap();
    assert!(!stored.windows(4).any(|w| w == b"Exif"), "EXIF left in");
    assert!(!stored.windows(3).any(|w| w == b"GPS"), "location left in");
    let image = image::load_from_memory(&stored).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (20, 40));
    // The left (red) half of the sensor's picture is the top once upright.
    let [r, _, b] = image.get_pixel(10, 5).0;
    assert!(r > 200 && b < 60, "top is {:?}", image.get_pixel(10, 5));
    let [r, _, b] = image.get_pixel(10, 35).0;
    assert!(b > 200 && r < 60, "bottom is {:?}", image.get_pixel(10, 35));
}

/// Every bad upload is a documented 4xx in the API's error shape, and
/// stores neither bytes nor a record; the JSON routes keep their 64 KiB
/// limit while uploads have their own.
#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), &["--media-body-limit", "200000"]).await;
    let alice = server.user("alice").await;
    let png = image_bytes(64, 64, ImageFormat::Png);
    let truncated = png[..png.len() / 2].to_vec();
    let bomb = png_declaring(100_000, 100_000);
    let wide = image_bytes(9000, 1, ImageFormat::Png);
    let text = b"just some text, honest".to_vec();
    let pdf = b"%PDF-1.4\n%...".to_vec();
    let cases = [
        (
            "empty.png",
            Vec::new(),
            "image/png",
            422,
            "invalid_input",
            "empty",
        ),
        (
            "cut.png",
            truncated,
            "image/png",
            422,
            "invalid_input",
            "truncated",
        ),
        (
            "bomb.png",
            bomb,
            "image/png",
            422,
            "invalid_input",
            "larger than 8192x8192",
        ),
        (
            "wide.png",
            wide,
            "image/png",
            422,
            "invalid_input",
            "larger than 8192x8192",
        ),
        (
            "notes.png",
            text,
            "image/png",
            415,
            "unsupported_media_type",
            "JPEG, PNG",
        ),
        (
            "doc.pdf",
            pdf,
            "application/pdf",
            415,
            "unsupported_media_type",
            "JPEG, PNG",
        ),
        (
            "big.png",
            vec![0x89; 300_000],
            "image/png",
            413,
            "payload_too_large",
            "too large",
        ),
    ];
    for (name, bytes, mime, status, code, says) in cases {
        let response = upload_as(&server, &alice, bytes, name, mime).await;
        let error = response.error(status, code);
        if status == 422 {
            assert_eq!(error["field"], "file", "{name}: {}", response.text);
        }
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
    }
    // Another part; no part; two files; not multipart at all.
    let form = Form::new().text("caption", "hello");
    upload_form(&server, &alice, form)
        .await
        .error(400, "bad_request");
    upload_form(&server, &alice, Form::new())
        .await
        .error(400, "bad_request");
    let twice = Form::new()
        .part("file", Part::bytes(png.clone()))
        .part("file", Part::bytes(png.clone()));
    upload_form(&server, &alice, twice)
        .await
        .error(400, "bad_request");
    server
        .post("/media", &alice.token, json!({"file": "x"}))
        .await
        .error(415, "unsupported_media_type");
    assert!(files(&dir.path().join("media")).is_empty());
    assert_eq!(media_rows(dir.path()).await, 0);

    // An upload above 64 KiB is fine; a JSON body of that size is not.
    let large = noise_png(200, 200);
    assert!(large.len() > 64 * 1024, "{}", large.len());
    upload_as(&server, &alice, large, "large.png", "image/png")
        .await
        .ok(201);
    let long = "x".repeat(70 * 1024);
    server
        .patch("/me/profile", &alice.token, json!({ "bio": long }))
        .await
        .error(413, "payload_too_large");
    assert_eq!(files(&dir.path().join("media")).len(), 2);
    assert_eq!(media_rows(dir.path()).await, 1);
}

/// Signed URLs work until they expire; a changed signature, variant or
/// expiry, or none, is refused with 403.
#[tokio::test]
async fn signed_urls_expire_and_refuse_tampering() {
    let server = TestServer::with_flags(&["--media-url-ttl", "2"]).await;
    let alice = server.user("alice").await;
    let view = upload(&server, &alice, 30, 30).await;
    let url = view["original_url"].as_str().unwrap().to_owned();
    assert_eq!(fetch(&server, &url).await.status(), 200);
    let (plain, query) = url.split_once('?').unwrap();
    let sig = query.split_once("&sig=").unwrap().1;
    let flipped = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let expires: i64 = query
        .strip_prefix("expires=")
        .and_then(|q| q.split('&').next())
        .unwrap()
        .parse()
        .unwrap();
    let thumbnail = plain.replace("/original", "/thumbnail");
    for forged in [
        plain.to_owned(),
        format!("{plain}?expires={expires}&sig={flipped}"),
        format!("{plain}?expires={}&sig={sig}", expires + 100),
        format!("{thumbnail}?{query}"),
        format!("{plain}?expires={expires}"),
    ] {
        let response = Resp::read(fetch(&server, &forged).await).await;
        response.error(403, "forbidden");
    }
    let unknown = plain.replace(view["media"]["id"].as_str().unwrap(), "12345");
    let response = Resp::read(fetch(&server, &format!("{unknown}?{query}")).await).await;
    response.error(404, "not_found");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = Resp::read(fetch(&server, &url).await).await;
    response.error(403, "forbidden");
}

/// An avatar and a cover are public: the profile points at their plain
/// URLs, which anyone may load and cache; only the uploader attaches an
/// upload, once; a new avatar replaces the old, which is removed.
#[tokio::test]
async fn avatars_and_covers_are_public_and_set_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), &[]).await;
    let [alice, bob] = server.users(["alice", "bob"]).await;
    let first = upload(&server, &alice, 64, 64).await;
    let first_id = first["media"]["id"].as_str().unwrap().to_owned();
    let account = server
        .put(
            "/me/avatar",
            &alice.token,
            Some(json!({ "media_id": first_id })),
        )
        .await
        .ok(200);
    let avatar_url = account["profile"]["avatar_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        avatar_url,
        server.api(&format!("/media/{first_id}/original"))
    );
    let profile = server
        .get_anon(&format!("/users/{}", alice.id))
        .await
        .ok(200);
    assert_eq!(profile["user"]["avatar_url"], avatar_url.as_str());
    let response = fetch(&server, &avatar_url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let seen = server
        .get(&format!("/media/{first_id}"), &bob.token)
        .await
        .ok(200);
    assert_eq!(seen["media"]["attachment"], json!({"kind": "avatar"}));
    assert_eq!(seen["urls_expire_at"], Value::Null);

    // Once only, and only by its uploader.
    server
        .put(
            "/me/cover",
            &alice.token,
            Some(json!({ "media_id": first_id })),
        )
        .await
        .err(409, "conflict", None);
    server
        .put(
            "/me/avatar",
            &bob.token,
            Some(json!({ "media_id": first_id })),
        )
        .await
        .err(403, "forbidden", None);
    let unattached = upload(&server, &alice, 64, 64).await;
    let unattached_id = unattached["media"]["id"].as_str().unwrap();
    server
        .put(
            "/me/avatar",
            &bob.token,
            Some(json!({ "media_id": unattached_id })),
        )
        .await
        .err(404, "not_found", None);
    server
        .put(
            "/me/cover",
            &alice.token,
            Some(json!({ "media_id": "12345" })),
        )
        .await
        .err(404, "not_found", None);

    let cover = server
        .put(
            "/me/cover",
            &alice.token,
            Some(json!({ "media_id": unattached_id })),
        )
        .await
        .ok(200);
    let cover_url = cover["profile"]["cover_url"].as_str().unwrap();
    assert_eq!(fetch(&server, cover_url).await.status(), 200);

    // A new avatar: the old one is released and removed (record and bytes).
    let second = upload(&server, &alice, 32, 32).await;
    let second_id = second["media"]["id"].as_str().unwrap();
    let account = server
        .put(
            "/me/avatar",
            &alice.token,
            Some(json!({ "media_id": second_id })),
        )
        .await
        .ok(200);
    assert!(account["profile"]["avatar_url"]
        .as_str()
        .unwrap()
        .contains(second_id));
    // Its bytes go first, then its record.
    within("the old avatar to be removed", async {
        while media_rows(dir.path()).await > 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let left = files(&dir.path().join("media"));
    assert!(!left.iter().any(|f| f.contains(&first_id)), "{left:?}");
    assert_eq!(left.len(), 4, "{left:?}");
    let response = Resp::read(fetch(&server, &avatar_url).await).await;
    response.error(404, "not_found");
    assert_eq!(fetch(&server, cover_url).await.status(), 200);
}

/// Uploads never attached are removed, record and bytes, once the grace
/// period has passed; attached ones stay.
#[tokio::test]
async fn uploads_never_attached_are_removed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), &["--media-grace", "2"]).await;
    let alice = server.user("alice").await;
    let kept = upload(&server, &alice, 16, 16).await;
    let kept_id = kept["media"]["id"].as_str().unwrap();
    server
        .put(
            "/me/avatar",
            &alice.token,
            Some(json!({ "media_id": kept_id })),
        )
        .await
        .ok(200);
    let stale = upload(&server, &alice, 16, 16).await;
    let stale_id = stale["media"]["id"].as_str().unwrap().to_owned();
    assert_eq!(files(&dir.path().join("media")).len(), 4);
    within("the stale upload to be removed", async {
        while media_rows(dir.path()).await > 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let left = files(&dir.path().join("media"));
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|f| f.contains(kept_id)), "{left:?}");
    server
        .get(&format!("/media/{stale_id}"), &alice.token)
        .await
        .err(404, "not_found", None);
    server
        .put(
            "/me/cover",
            &alice.token,
            Some(json!({ "media_id": stale_id })),
        )
        .await
        .err(404, "not_found", None);
    let url = kept["original_url"].as_str().unwrap();
    assert_eq!(fetch(&server, url).await.status(), 200);
}

/// Sends an upload of `body` over a raw connection, pausing `pause` after
/// its first half, and returns the response's status line and body.
async fn slow_upload(server: &TestServer, user: &User, body: &[u8], pause: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut form = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
        Content-Type: image/png\r\n\r\n"
        .to_vec();
    form.extend_from_slice(body);
    form.extend_from_slice(b"\r\n--x--\r\n");
    let head = format!(
        "POST /api/v1/media HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        server.addr,
        user.token,
        form.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = form.split_at(form.len() / 2);
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(pause).await;
    // The server may have answered and closed already.
    let _ = stream.write_all(rest).await;
    let mut response = Vec::new();
    within("the response", stream.read_to_end(&mut response))
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// The upload route has its own timeout: with `--media-timeout 1` a stalled
/// upload is answered 408 in the API's error shape, while with
/// `--request-timeout 1` (the JSON routes') an upload taking two seconds
/// goes through.
#[tokio::test]
async fn uploads_have_their_own_timeout() {
    let png = image_bytes(20, 20, ImageFormat::Png);
    let strict = TestServer::with_flags(&["--media-timeout", "1"]).await;
    let alice = strict.user("alice").await;
    let response = slow_upload(&strict, &alice, &png, Duration::from_secs(3)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains(r#""code":"timeout""#), "{response}");

    let lenient = TestServer::with_flags(&["--request-timeout", "1"]).await;
    let bob = lenient.user("bob").await;
    let response = slow_upload(&lenient, &bob, &png, Duration::from_secs(2)).await;
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}
