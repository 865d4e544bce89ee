//! Reads the credential scope of a SigV4 `Authorization` header: which Region and which service a
//! request is for. The emulator serves every Region and both services on one port and tells them
//! apart this way, as the design requires. Signatures are not verified: any credentials are accepted.

/// The `{region}/{service}` part of a SigV4 credential scope, and the access key id that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub region: String,
    pub service: String,
    pub access_key: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/rds/aws4_request, SignedHeaders=..., Signature=...`.
pub fn scope_of(authorization: &str) -> Option<Scope> {
    let rest = authorization.trim().strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let key = parts.next()?;
    let _date = parts.next()?;
    let region = parts.next()?;
    let service = parts.next()?;
    if parts.next()? != "aws4_request" || region.is_empty() || service.is_empty() {
        return None;
    }
    Some(Scope {
        region: region.to_owned(),
        service: service.to_owned(),
        access_key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_and_service_come_from_the_credential_scope() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-west-2/rds/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            scope_of(h),
            Some(Scope {
                region: "us-west-2".into(),
                service: "rds".into(),
                access_key: "AKIDEXAMPLE".into(),
            })
        );
    }

    #[test]
    fn anything_but_a_sigv4_header_has_no_scope() {
        assert_eq!(scope_of("Bearer xyz"), None);
        assert_eq!(scope_of("AWS4-HMAC-SHA256 Credential=AK/2024/us-east-1"), None);
        assert_eq!(
            scope_of("AWS4-HMAC-SHA256 Credential=AK/2024/us-east-1/route53/other"),
            None
        );
    }
}
