//! Istio's certificate API, hand-written (no protoc here): the messages of
//! `security/proto/istioca.proto` and a tonic server and client for
//! `istio.v1.auth.IstioCertificateService/CreateCertificate`, in the shape
//! tonic's code generator emits. Field numbers are Istio's, so Istio's own
//! agent can talk to this server and ours to istiod.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use envoy_types::pb::google::protobuf::Struct;
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};

/// The gRPC service name.
pub const SERVICE_NAME: &str = "istio.v1.auth.IstioCertificateService";
/// The one method's path.
pub const CREATE_CERTIFICATE_PATH: &str =
    "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// `istio.v1.auth.IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded certificate request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds (0: the CA's default).
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
    /// Optional metadata (Istio uses it for impersonation; ignored here).
    #[prost(message, optional, tag = "4")]
    pub metadata: Option<Struct>,
}

/// `istio.v1.auth.IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates: the leaf first, the root last.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

/// The service, as tonic's generated trait would declare it.
#[tonic::async_trait]
pub trait IstioCertificateService: Send + Sync + 'static {
    /// Signs a CSR for the caller's identity.
    async fn create_certificate(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> Result<tonic::Response<IstioCertificateResponse>, tonic::Status>;
}

/// The tower service routing `CreateCertificate` to `T`; add it to a
/// `tonic::transport::Server` beside other services.
#[derive(Debug)]
pub struct IstioCertificateServiceServer<T> {
    inner: Arc<T>,
}

impl<T> IstioCertificateServiceServer<T> {
    /// Wraps an implementation.
    pub fn new(inner: T) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl<T> Clone for IstioCertificateServiceServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> tonic::server::NamedService for IstioCertificateServiceServer<T> {
    const NAME: &'static str = SERVICE_NAME;
}

struct CreateCertificateSvc<T>(Arc<T>);

impl<T: IstioCertificateService> tonic::server::UnaryService<IstioCertificateRequest>
    for CreateCertificateSvc<T>
{
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<IstioCertificateRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.create_certificate(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for IstioCertificateServiceServer<T>
where
    T: IstioCertificateService,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == CREATE_CERTIFICATE_PATH {
            let inner = self.inner.clone();
            return Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(CreateCertificateSvc(inner), req).await)
            });
        }
        Box::pin(async move {
            let mut response = http::Response::new(tonic::body::Body::default());
            let headers = response.headers_mut();
            headers.insert(
                tonic::Status::GRPC_STATUS,
                (tonic::Code::Unimplemented as i32).into(),
            );
            headers.insert(
                http::header::CONTENT_TYPE,
                tonic::metadata::GRPC_CONTENT_TYPE,
            );
            Ok(response)
        })
    }
}

/// A client for the certificate service.
#[derive(Clone, Debug)]
pub struct IstioCertificateServiceClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl IstioCertificateServiceClient {
    /// Over an established channel.
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    /// Calls `CreateCertificate`.
    pub async fn create_certificate(
        &mut self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> Result<tonic::Response<IstioCertificateResponse>, tonic::Status> {
        self.inner.ready().await.map_err(|e| {
            tonic::Status::unavailable(format!("certificate service not ready: {e}"))
        })?;
        let path = http::uri::PathAndQuery::from_static(CREATE_CERTIFICATE_PATH);
        self.inner
            .unary(request, path, tonic_prost::ProstCodec::default())
            .await
    }
}
