//! The gRPC status a client sees when the transport, not evlog, refuses a request.
//!
//! evlog's client handlers answer every refusal in-band, in the response's `error`, under
//! gRPC OK; they never return a gRPC error status. So a status on the client listener
//! comes from tonic itself, before a handler ran, and nothing of the request was done:
//! - a message over the decoding limit: tonic says `OUT_OF_RANGE`; we answer
//!   `RESOURCE_EXHAUSTED` naming the limit and the setting it follows;
//! - a body that does not decode (bad protobuf, a bad compression flag): tonic says
//!   `INTERNAL`, which reads like a node fault; we answer `INVALID_ARGUMENT`.
//!
//! Any other status (`UNIMPLEMENTED` for an unknown method, ...) passes unchanged.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// Wraps one client service (`EventLogServer`, `AdminServer`) and rewrites the statuses
/// tonic produces for it, as the module comment says.
#[derive(Clone)]
pub struct WireStatus<S> {
    inner: S,
    /// How the message limit was set, for the refusal's message.
    limit_source: Arc<str>,
}

impl<S> WireStatus<S> {
    pub fn new(inner: S, limit_source: String) -> Self {
        Self {
            inner,
            limit_source: limit_source.into(),
        }
    }
}

impl<S: NamedService> NamedService for WireStatus<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for WireStatus<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let answered = self.inner.call(request);
        let limit_source = self.limit_source.clone();
        Box::pin(async move {
            let response = answered.await?;
            Ok(rewrite(response, &limit_source))
        })
    }
}

/// Replaces a transport status on a trailers-only response (the only kind tonic sends
/// for a request it could not decode) with the status a client should act on.
fn rewrite(mut response: Response<Body>, limit_source: &str) -> Response<Body> {
    let Some(status) = response.extensions().get::<Status>() else {
        return response;
    };
    let Some(replacement) = replacement(status, limit_source) else {
        return response;
    };
    let headers = response.headers_mut();
    headers.remove(Status::GRPC_STATUS_DETAILS);
    replacement
        .add_header(headers)
        .expect("a status built from plain ASCII text encodes into headers");
    response.extensions_mut().insert(replacement);
    response
}

fn replacement(status: &Status, limit_source: &str) -> Option<Status> {
    match status.code() {
        Code::OutOfRange if status.message().contains("message length too large") => {
            Some(Status::resource_exhausted(format!(
                "request refused, nothing was written: {} ({limit_source}); \
                 split it into smaller requests",
                status.message()
            )))
        }
        Code::Internal => Some(Status::invalid_argument(format!(
            "malformed request, nothing was done: {}",
            status.message()
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_message_becomes_resource_exhausted_naming_the_limit() {
        let tonic_says = Status::out_of_range(
            "Error, decoded message length too large: found 12582912 bytes, the limit is: \
             3145728 bytes",
        );
        let answer = replacement(&tonic_says, "produce.request_bytes_max + 1 MiB").unwrap();
        assert_eq!(answer.code(), Code::ResourceExhausted);
        assert!(answer.message().contains("found 12582912 bytes"));
        assert!(answer.message().contains("the limit is: 3145728 bytes"));
        assert!(answer.message().contains("produce.request_bytes_max"));
    }

    #[test]
    fn an_undecodable_body_becomes_invalid_argument() {
        let tonic_says = Status::internal("failed to decode Protobuf message: invalid wire type");
        let answer = replacement(&tonic_says, "x").unwrap();
        assert_eq!(answer.code(), Code::InvalidArgument);
        assert!(answer.message().contains("invalid wire type"));
    }

    #[test]
    fn other_statuses_pass_unchanged() {
        assert!(replacement(&Status::unimplemented(""), "x").is_none());
        assert!(replacement(&Status::out_of_range("offset"), "x").is_none());
    }

    #[test]
    fn the_rewritten_status_is_in_the_headers_and_extensions() {
        let response: Response<Body> = Status::internal("failed to decode").into_http();
        let response = rewrite(response, "x");
        assert_eq!(response.headers()["grpc-status"], "3");
        let status = response.extensions().get::<Status>().unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
