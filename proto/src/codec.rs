//! The protobuf codec of Fafnir's services: prost's, except that a message that does not decode
//! is the sender's fault, answered INVALID_ARGUMENT (prost's codec calls it INTERNAL, which
//! would tell a client that sent garbage that the server is broken).

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The start of the message of an undecodable message's status: clients that receive it as
/// an answer (from a peer that sent garbage) turn it back into INTERNAL with [`from_peer`].
pub const UNDECODABLE: &str = "the message is not valid protobuf";

/// A status as a client should read it. The codec is generated for both sides, so a client's
/// own decode failure of a peer's answer comes back as INVALID_ARGUMENT too: that is the
/// peer's fault, not the caller's, and is read as INTERNAL. `client::Client` applies it to every
/// answer.
pub fn from_peer(s: Status) -> Status {
    if s.code() == Code::InvalidArgument && s.message().starts_with(UNDECODABLE) {
        Status::internal(s.message().to_owned())
    } else {
        s
    }
}

/// [`ProstCodec`] with decode errors as INVALID_ARGUMENT.
#[derive(Debug, Clone, Default)]
pub struct StrictCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Codec for StrictCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(self.0.decoder())
    }
}

/// [`ProstDecoder`] whose failures are INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| match s.code() {
            Code::Internal => Status::invalid_argument(format!("{UNDECODABLE}: {}", s.message())),
            _ => s,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
