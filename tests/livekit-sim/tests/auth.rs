//! Authentication and grants as LiveKit enforces them.

mod common;

use common::{start, KEY, SECRET};
use livekit_api::access_token::{AccessToken, Claims, SIPGrants, VideoGrants};
use livekit_api::services::room::RoomClient;
use livekit_api::services::{ServerError, ServiceError};
use livekit_protocol as proto;
use livekit_sim::jwt::{now_unix, sign_hs256};
use prost::Message;

async fn call(url: &str, method: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, String, String) {
    let mut headers = vec![("content-type", "application/protobuf")];
    let bearer;
    if let Some(token) = auth {
        bearer = format!("Bearer {token}");
        headers.push(("authorization", bearer.as_str()));
    }
    let resp = livekit_sim::http_client::post(
        &format!("{url}/twirp/livekit.RoomService/{method}"),
        &headers,
        body.into(),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let ct = resp
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        resp.status,
        ct,
        String::from_utf8_lossy(&resp.body).into_owned(),
    )
}

fn list_body() -> Vec<u8> {
    proto::ListRoomsRequest::default().encode_to_vec()
}

#[tokio::test]
async fn bad_and_expired_tokens_get_401() {
    let sim = start().await;
    let url = sim.url();

    // Wrong secret, through the real SDK.
    let wrong = RoomClient::with_api_key(&url, KEY, "not-the-secret");
    let err = wrong.list_rooms(vec![]).await.unwrap_err();
    // LiveKit's middleware answers a bad token with plain text, which the SDK
    // cannot decode as a Twirp error: it surfaces as a request (decode) error.
    assert!(
        matches!(err, ServiceError::Twirp(ServerError::Request(_))),
        "{err:?}"
    );

    let (status, ct, body) = call(&url, "ListRooms", Some("garbage"), list_body()).await;
    assert_eq!(
        (status, body.as_str()),
        (401, "invalid authorization token")
    );
    assert!(ct.starts_with("text/plain"));

    let other_key = AccessToken::with_api_key("APIother", SECRET)
        .to_jwt()
        .unwrap();
    let (status, _, body) = call(&url, "ListRooms", Some(&other_key), list_body()).await;
    assert_eq!((status, body.as_str()), (401, "invalid API key"));

    let now = now_unix() as usize;
    let expired = sign_hs256(
        &Claims {
            iss: KEY.into(),
            nbf: now - 7200,
            exp: now - 3600,
            video: VideoGrants {
                room_list: true,
                ..Default::default()
            },
            ..Default::default()
        },
        SECRET,
    )
    .unwrap();
    let (status, _, body) = call(&url, "ListRooms", Some(&expired), list_body()).await;
    assert_eq!(status, 401);
    assert!(body.starts_with("invalid authorization token: "), "{body}");

    let wrong_secret = AccessToken::with_api_key(KEY, "x")
        .with_grants(VideoGrants {
            room_list: true,
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
    let (status, _, _) = call(&url, "ListRooms", Some(&wrong_secret), list_body()).await;
    assert_eq!(status, 401);

    let resp = livekit_sim::http_client::post(
        &format!("{url}/twirp/livekit.RoomService/ListRooms"),
        &[
            ("content-type", "application/protobuf"),
            ("authorization", "Basic Zm9vOmJhcg=="),
        ],
        list_body().into(),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_token_or_grant_is_twirp_unauthenticated() {
    let sim = start().await;
    let url = sim.url();
    let (status, ct, body) = call(&url, "ListRooms", None, list_body()).await;
    assert_eq!(status, 401);
    assert_eq!(ct, "application/json");
    assert_eq!(
        body,
        r#"{"code":"unauthenticated","msg":"permissions denied"}"#
    );

    // roomAdmin for another room does not cover this one.
    let admin_other = AccessToken::with_api_key(KEY, SECRET)
        .with_grants(VideoGrants {
            room_admin: true,
            room: "a".into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
    let body_b = proto::ListParticipantsRequest { room: "b".into() }.encode_to_vec();
    let (status, _, body) = call(&url, "ListParticipants", Some(&admin_other), body_b).await;
    assert_eq!(status, 401);
    assert!(body.contains("unauthenticated"));

    // A SIP admin grant is not a call grant.
    let sip_admin = AccessToken::with_api_key(KEY, SECRET)
        .with_sip_grants(SIPGrants {
            admin: true,
            call: false,
        })
        .to_jwt()
        .unwrap();
    let req = proto::CreateSipParticipantRequest {
        sip_trunk_id: "ST_x".into(),
        sip_call_to: "9530251797".into(),
        room_name: "r".into(),
        ..Default::default()
    };
    let resp = livekit_sim::http_client::post(
        &format!("{url}/twirp/livekit.SIP/CreateSIPParticipant"),
        &[
            ("content-type", "application/protobuf"),
            ("authorization", &format!("Bearer {sip_admin}")),
        ],
        req.encode_to_vec().into(),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 401);
    assert!(sim.rooms().is_empty(), "nothing dialled");

    // The SDK's own tokens carry exactly the grants each call needs.
    let rooms = RoomClient::with_api_key(&url, KEY, SECRET);
    rooms.list_rooms(vec![]).await.unwrap();
    sim.shutdown().await;
}
