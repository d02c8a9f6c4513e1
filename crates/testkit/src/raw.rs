//! Calls with bytes nobody checked: a gRPC client that sends whatever frames
//! it is given to any method, as a broken or hostile client would, and
//! returns the raw answer. For the malformed-input tests.

use bytes::{Buf, BufMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Frames as they are, both ways.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

fn request<T>(message: T, bearer: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {bearer}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn path_of(path: &str) -> Result<http::uri::PathAndQuery, Status> {
    http::uri::PathAndQuery::try_from(path)
        .map_err(|e| Status::invalid_argument(format!("{path}: {e}")))
}

/// Sends `body` as the one message of a unary call to `path`
/// (`/package.Service/Method`).
pub async fn unary(
    channel: Channel,
    path: &str,
    bearer: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(request(body, bearer), path_of(path)?, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// Sends `frames` as the messages of a client stream to `path`; every answer
/// until the stream ends, and how it ended.
pub async fn stream(
    channel: Channel,
    path: &str,
    bearer: &str,
    frames: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, Result<(), Status>) {
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        return (vec![], Err(Status::unavailable(e.to_string())));
    }
    let path = match path_of(path) {
        Ok(p) => p,
        Err(s) => return (vec![], Err(s)),
    };
    let answer = grpc
        .streaming(request(tokio_stream::iter(frames), bearer), path, RawCodec)
        .await;
    let mut inbound = match answer {
        Ok(r) => r.into_inner(),
        Err(s) => return (vec![], Err(s)),
    };
    let mut got = vec![];
    loop {
        match inbound.message().await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => return (got, Ok(())),
            Err(s) => return (got, Err(s)),
        }
    }
}
