//! Media on the server: the byte store over `object_store`, the image
//! pipeline (detect, decode within limits, turn upright, re-encode,
//! thumbnail) and the signed URLs non-public media is served through. The
//! rules (who may attach and see what, expiry) are kith-core's
//! ([`kith_core::Media`]); the routes are in [`crate::routes::media`].

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use kith_core::{ByteStore, MediaId, MediaKind, NewMedia, Variant};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use sha2::Sha256;

use crate::error::ApiError;

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX: u32 = 320;

/// The most memory one image may take to decode (bytes).
pub const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;

/// The quality of re-encoded JPEGs (1 to 100).
const JPEG_QUALITY: u8 = 85;

/// A [`ByteStore`] over any `object_store` backend: a local directory
/// (the default), memory, or an S3-compatible bucket.
pub struct ObjectBytes(Arc<dyn ObjectStore>);

impl ObjectBytes {
    /// The byte store `--media-dir` names: `:memory:` keeps the bytes in
    /// memory (tests); `s3://<bucket>/<prefix>` is an S3-compatible bucket
    /// (credentials, region and endpoint from the `AWS_*` environment
    /// variables, such as `AWS_ACCESS_KEY_ID`, `AWS_REGION`,
    /// `AWS_ENDPOINT`), the keys under `<prefix>`; anything else is a
    /// directory, created if missing.
    ///
    /// # Errors
    /// The directory cannot be created or opened; the S3 settings are
    /// incomplete.
    pub fn open(dir: &str) -> Result<Self, object_store::Error> {
        if dir == ":memory:" {
            return Ok(Self(Arc::new(InMemory::new())));
        }
        if let Some(rest) = dir.strip_prefix("s3://") {
            let bucket = AmazonS3Builder::from_env().with_url(dir).build()?;
            let prefix = rest.split_once('/').map_or("", |(_, prefix)| prefix);
            return Ok(Self(Arc::new(PrefixStore::new(
                bucket,
                ObjectPath::parse(prefix)?,
            ))));
        }
        std::fs::create_dir_all(Path::new(dir)).map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?;
        Ok(Self(Arc::new(LocalFileSystem::new_with_prefix(dir)?)))
    }
}

fn storage_error(e: object_store::Error) -> kith_core::Error {
    kith_core::Error::storage(e)
}

#[async_trait]
impl ByteStore for ObjectBytes {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> kith_core::Result<()> {
        let path = ObjectPath::parse(key).map_err(|e| storage_error(e.into()))?;
        self.0
            .put(&path, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(storage_error)
    }

    async fn get(&self, key: &str) -> kith_core::Result<Option<Vec<u8>>> {
        let path = ObjectPath::parse(key).map_err(|e| storage_error(e.into()))?;
        match self.0.get(&path).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(storage_error)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn delete(&self, key: &str) -> kith_core::Result<()> {
        let path = ObjectPath::parse(key).map_err(|e| storage_error(e.into()))?;
        match self.0.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

/// The limits images are decoded within.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// The largest width and height, in pixels.
    pub max_dimension: u32,
    /// The most memory a decode may allocate, in bytes.
    pub max_alloc: u64,
}

/// Turns an upload's bytes into what [`kith_core::Media::upload`] stores:
/// the type is detected from the bytes alone (JPEG, PNG, WebP or GIF, whose
/// first frame is kept); the image is decoded within `limits`, turned
/// upright by its EXIF orientation and re-encoded without any metadata
/// (JPEG as JPEG, the others as PNG), with a thumbnail of at most
/// [`THUMBNAIL_MAX`] pixels a side in the same format. CPU-bound: run it on
/// a blocking thread.
///
/// # Errors
/// [`ApiError::Kith`] with [`kith_core::Error::InvalidInput`] (`file`) for
/// an empty file, one larger than the limits, or one that does not decode
/// (truncated, corrupt); [`ApiError::UnsupportedFile`] for any other type.
pub fn process(bytes: &[u8], limits: ImageLimits) -> Result<NewMedia, ApiError> {
    if bytes.is_empty() {
        return Err(invalid_file("the file is empty"));
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif)) => f,
        _ => return Err(ApiError::UnsupportedFile),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_dimension);
    decode_limits.max_image_height = Some(limits.max_dimension);
    decode_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decode_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(&e, limits))?;
    // A broken EXIF block is no reason to refuse the picture.
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(&e, limits))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    let (width, height) = (image.width(), image.height());
    let thumbnail = if width <= THUMBNAIL_MAX && height <= THUMBNAIL_MAX {
        image.clone()
    } else {
        image.thumbnail(THUMBNAIL_MAX, THUMBNAIL_MAX)
    };
    let (content_type, original, thumbnail) = if format == ImageFormat::Jpeg {
        ("image/jpeg", encode_jpeg(&image)?, encode_jpeg(&thumbnail)?)
    } else {
        ("image/png", encode_png(&image)?, encode_png(&thumbnail)?)
    };
    Ok(NewMedia {
        kind: MediaKind::Image,
        content_type: content_type.to_owned(),
        width,
        height,
        variants: vec![
            (Variant::Original, original),
            (Variant::Thumbnail, thumbnail),
        ],
    })
}

fn invalid_file(reason: impl Into<String>) -> ApiError {
    ApiError::Kith(kith_core::Error::invalid("file", reason))
}

fn decode_error(e: &image::ImageError, limits: ImageLimits) -> ApiError {
    match e {
        image::ImageError::Limits(_) => invalid_file(format!(
            "the image is larger than {max}x{max} pixels or needs more than {mib} MiB to decode",
            max = limits.max_dimension,
            mib = limits.max_alloc / (1024 * 1024)
        )),
        _ => invalid_file("the image is truncated or corrupt"),
    }
}

fn encode_jpeg(image: &DynamicImage) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
    DynamicImage::ImageRgb8(image.to_rgb8())
        .write_with_encoder(encoder)
        .map_err(encode_error)?;
    Ok(out)
}

fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    image
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .map_err(encode_error)?;
    Ok(out)
}

fn encode_error(e: image::ImageError) -> ApiError {
    ApiError::Kith(kith_core::Error::Internal(format!(
        "could not re-encode an image: {e}"
    )))
}

/// Signs and checks the URLs of media that is not public: HMAC-SHA256 with
/// the server's secret over the id, the variant and the expiry (Unix
/// seconds). Every node that serves the same media must hold the same
/// secret.
#[derive(Clone)]
pub struct UrlSigner {
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

impl UrlSigner {
    /// A signer over `secret`; a random one if `None` (URLs then stop
    /// working when the server restarts, and on other nodes).
    ///
    /// # Errors
    /// The system has no randomness for a random secret.
    pub fn new(secret: Option<&str>) -> Result<Self, getrandom::Error> {
        let secret: Arc<[u8]> = match secret {
            Some(s) => s.as_bytes().into(),
            None => {
                let mut random = [0u8; 32];
                getrandom::fill(&mut random)?;
                random.into()
            }
        };
        Ok(Self { secret })
    }

    fn mac(&self, id: MediaId, variant: Variant, expires: i64) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(format!("{id}/{}/{expires}", variant.as_str()).as_bytes());
        mac
    }

    /// The signature of a URL, in hex.
    pub fn sign(&self, id: MediaId, variant: Variant, expires: i64) -> String {
        hex::encode(self.mac(id, variant, expires).finalize().into_bytes())
    }

    /// Whether `signature` (hex) signs this id, variant and expiry (in
    /// constant time).
    pub fn verify(&self, id: MediaId, variant: Variant, expires: i64, signature: &str) -> bool {
        hex::decode(signature)
            .is_ok_and(|raw| self.mac(id, variant, expires).verify_slice(&raw).is_ok())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn byte_stores_by_setting() {
        let memory = ObjectBytes::open(":memory:").unwrap();
        memory
            .put("media/1/original", b"abc".to_vec())
            .await
            .unwrap();
        let got = memory.get("media/1/original").await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"abc"[..]));
        memory.delete("media/1/original").await.unwrap();
        memory.delete("media/1/original").await.unwrap();
        assert_eq!(memory.get("media/1/original").await.unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let local = ObjectBytes::open(nested.to_str().unwrap()).unwrap();
        local.put("media/2/thumbnail", b"x".to_vec()).await.unwrap();
        assert!(nested.join("media/2/thumbnail").is_file());
        // A bucket is configured without being reached; a URL without one
        // is refused.
        assert!(ObjectBytes::open("s3://kith-media/node-a/uploads").is_ok());
        assert!(ObjectBytes::open("s3://").is_err());
    }

    #[test]
    fn signatures_check_every_part() {
        let signer = UrlSigner::new(Some("secret")).unwrap();
        let id = MediaId::new(9);
        let sig = signer.sign(id, Variant::Original, 100);
        assert!(signer.verify(id, Variant::Original, 100, &sig));
        assert!(!signer.verify(MediaId::new(8), Variant::Original, 100, &sig));
        assert!(!signer.verify(id, Variant::Thumbnail, 100, &sig));
        assert!(!signer.verify(id, Variant::Original, 101, &sig));
        assert!(!signer.verify(id, Variant::Original, 100, "zz"));
        let other = UrlSigner::new(Some("other")).unwrap();
        assert!(!other.verify(id, Variant::Original, 100, &sig));
        // Random secrets differ.
        let (a, b) = (UrlSigner::new(None).unwrap(), UrlSigner::new(None).unwrap());
        assert_ne!(
            a.sign(id, Variant::Original, 1),
            b.sign(id, Variant::Original, 1)
        );
    }
}
