//! The clients other services use to reach user-service.

use fafnir_core::UserId;
use fafnir_proto::client::{Client, ClientOptions};
use fafnir_proto::events::{EventSigner, EventSink};
use fafnir_proto::users::v1 as pb;
use fafnir_proto::users::v1::user_service_client::UserServiceClient;
use tonic::transport::Channel;

use super::convert::{from_status, profile_from_pb, update_to_pb};
use crate::{Page, Profile, ProfileDirectory, ProfileUpdate, UsersError};

/// Profiles as a client of user-service: one shared channel, a deadline per call, retries for
/// reads (writes are sent once: a timeout may hide a success).
#[derive(Debug, Clone)]
pub struct RemoteProfiles {
    client: Client<UserServiceClient<Channel>>,
}

impl RemoteProfiles {
    pub fn new(channel: Channel, opts: ClientOptions) -> Self {
        Self { client: Client::new(UserServiceClient::new(channel), opts) }
    }
}

#[async_trait::async_trait]
impl ProfileDirectory for RemoteProfiles {
    async fn get(&self, bearer: Option<&str>, user: UserId) -> Result<Profile, UsersError> {
        let msg = pb::GetProfileRequest { user_id: user.to_string() };
        let r = self
            .client
            .read(msg, bearer, |mut c, r| async move { c.get_profile(r).await })
            .await
            .map_err(from_status)?;
        profile_from_pb(r.profile.ok_or(UsersError::NotFound)?)
    }

    async fn update(&self, bearer: Option<&str>, user: UserId, u: &ProfileUpdate) -> Result<Profile, UsersError> {
        let r = self
            .client
            .write(update_to_pb(user, u), bearer, |mut c, r| async move { c.update_profile(r).await })
            .await
            .map_err(from_status)?;
        profile_from_pb(r.profile.ok_or(UsersError::NotFound)?)
    }

    async fn delete(&self, bearer: Option<&str>, user: UserId) -> Result<(), UsersError> {
        let msg = pb::DeleteProfileRequest { user_id: user.to_string() };
        self.client
            .write(msg, bearer, |mut c, r| async move { c.delete_profile(r).await })
            .await
            .map_err(from_status)?;
        Ok(())
    }

    async fn list(
        &self,
        bearer: Option<&str>,
        first: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<Profile>, UsersError> {
        let msg =
            pb::ListProfilesRequest { page_size: first.unwrap_or(0), page_token: after.unwrap_or_default().to_owned() };
        let r = self
            .client
            .read(msg, bearer, |mut c, r| async move { c.list_profiles(r).await })
            .await
            .map_err(from_status)?;
        let items = r.profiles.into_iter().map(profile_from_pb).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor: (!r.next_page_token.is_empty()).then_some(r.next_page_token) })
    }
}

/// Delivers account events to user-service.
pub type UsersEventSink = EventSink<UserServiceClient<Channel>>;

/// The outbox subscriber that delivers account events to user-service, under the same name as
/// the in-process handler ([`crate::SUBSCRIBER`]).
pub fn users_event_sink(channel: Channel, signer: EventSigner) -> UsersEventSink {
    EventSink::new(UserServiceClient::new(channel), signer, crate::SUBSCRIBER, "user-service", |mut c, r| {
        Box::pin(async move {
            let r = r.map(|event_json| pb::HandleAccountEventRequest { event_json, occurred_at: None });
            c.handle_account_event(r).await.map(drop)
        })
    })
}
