//! Parsing of the XML documents S3 answers with.

use ftpgate_core::{StorageError, StorageErrorKind};

use super::{PendingUpload, store_error};

/// The text of the first `<tag>` element in an XML document.
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.tag_name().name() == tag)
        .map(|n| n.text().unwrap_or("").to_string())
}

/// The `<Code>` of an S3 error document.
pub(super) fn error_code(body: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).ok()?;
    if doc.root_element().tag_name().name() != "Error" {
        return None;
    }
    xml_text(body, "Code")
}

pub(super) struct UploadsPage {
    pub(super) uploads: Vec<PendingUpload>,
    pub(super) truncated: bool,
    pub(super) next: Option<(String, String)>,
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

pub(super) fn parse_uploads(xml: &str) -> Result<UploadsPage, StorageError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| {
        store_error(
            StorageErrorKind::Local,
            format!("ListMultipartUploads response: {e}"),
        )
    })?;
    let root = doc.root_element();
    let child_text = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|c| c.tag_name().name() == name)
            .and_then(|c| c.text())
            .unwrap_or("")
            .to_string()
    };
    let uploads = root
        .children()
        .filter(|n| n.tag_name().name() == "Upload")
        .map(|n| PendingUpload {
            key: percent_decode(&child_text(n, "Key")),
            upload_id: child_text(n, "UploadId"),
            initiated: child_text(n, "Initiated").parse().ok(),
        })
        .collect();
    let truncated = child_text(root, "IsTruncated") == "true";
    let next = truncated.then(|| {
        (
            percent_decode(&child_text(root, "NextKeyMarker")),
            child_text(root, "NextUploadIdMarker"),
        )
    });
    Ok(UploadsPage {
        uploads,
        truncated,
        next,
    })
}

pub(super) fn parse_time(text: Option<&str>) -> Option<std::time::SystemTime> {
    let t: jiff::Timestamp = text?.parse().ok()?;
    Some(std::time::SystemTime::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_list_of_uploads() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><IsTruncated>true</IsTruncated>
  <NextKeyMarker>dir%2Fb</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <Upload><Key>dir/a%20b</Key><UploadId>id1</UploadId><Initiated>2024-01-02T03:04:05.000Z</Initiated></Upload>
  <Upload><Key>dir/b</Key><UploadId>id2</UploadId><Initiated>2024-01-02T03:04:06Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page = parse_uploads(xml).unwrap();
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "dir/a b");
        assert_eq!(page.uploads[0].upload_id, "id1");
        assert!(page.uploads[0].initiated.is_some());
        assert!(page.truncated);
        assert_eq!(page.next, Some(("dir/b".to_string(), "id2".to_string())));
    }

    #[test]
    fn reads_error_codes_and_etags() {
        assert_eq!(
            error_code("<Error><Code>NoSuchKey</Code></Error>"),
            Some("NoSuchKey".to_string())
        );
        assert_eq!(
            error_code("<CopyObjectResult><ETag>x</ETag></CopyObjectResult>"),
            None
        );
        assert_eq!(
            xml_text(
                "<CopyPartResult><ETag>&quot;abc&quot;</ETag></CopyPartResult>",
                "ETag"
            ),
            Some("\"abc\"".to_string())
        );
    }
}
