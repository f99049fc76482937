//! Every fault kind as a reqwest client sees it, the queue/rate/persistent precedence, and the Gate.

mod common;
use common::*;
use entra_emulator::{Endpoint, Fault, Gate, RetryAfter};
use std::time::Duration;

async fn token_call(
    s: &Setup,
) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), reqwest::Error> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", STORAGE),
            ("client_assertion_type", entra_emulator::JWT_BEARER),
            ("client_assertion", &s.issuer.mint(&s.sa)),
        ])
        .finish();
    let resp = s
        .client
        .post(format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            s.emu.authority_host()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    Ok((status, headers, bytes.to_vec()))
}

#[tokio::test]
async fn status_html_empty_oversized() {
    let s = setup().await;
    s.emu.push_fault(Endpoint::Token, Fault::Status(503));
    s.emu.push_fault(Endpoint::Token, Fault::Html(502));
    s.emu.push_fault(Endpoint::Token, Fault::Empty(500));
    s.emu
        .push_fault(Endpoint::Token, Fault::Oversized(200, 3 * 1024 * 1024));
    let (st, _, body) = token_call(&s).await.unwrap();
    assert_eq!(st, 503);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    let (st, h, body) = token_call(&s).await.unwrap();
    assert_eq!(st, 502);
    assert_eq!(h["content-type"], "text/html");
    assert!(String::from_utf8_lossy(&body).contains("<html>"));
    let (st, _, body) = token_call(&s).await.unwrap();
    assert_eq!(st, 500);
    assert!(body.is_empty());
    let (st, _, body) = token_call(&s).await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(body.len(), 3 * 1024 * 1024);
    // the queue is drained: a normal answer again
    let (st, _, _) = token_call(&s).await.unwrap();
    assert_eq!(st, 200);
    let statuses: Vec<u16> = s
        .emu
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::Token)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![503, 502, 500, 200, 200]);
}

#[tokio::test]
async fn throttle_seconds_and_http_date() {
    let s = setup().await;
    s.emu.push_fault(
        Endpoint::Token,
        Fault::Throttle {
            retry_after: RetryAfter::Seconds(60),
        },
    );
    s.emu.push_fault(
        Endpoint::Token,
        Fault::Throttle {
            retry_after: RetryAfter::HttpDate(120),
        },
    );
    let (st, h, _) = token_call(&s).await.unwrap();
    assert_eq!(st, 429);
    assert_eq!(h["retry-after"], "60");
    let (st, h, _) = token_call(&s).await.unwrap();
    assert_eq!(st, 429);
    let date = h["retry-after"].to_str().unwrap();
    assert!(date.ends_with(" GMT"), "{date}");
    let parsed = time::PrimitiveDateTime::parse(
        date.trim_end_matches(" GMT"),
        time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second]"
        ),
    )
    .unwrap()
    .assume_utc();
    let ahead = parsed - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::seconds(60) && ahead <= time::Duration::seconds(121));
}

#[tokio::test]
async fn persistent_fault_and_queue_precedence() {
    let s = setup().await;
    s.emu.set_fault(Endpoint::Token, Some(Fault::Status(500)));
    s.emu.push_fault(Endpoint::Token, Fault::Status(502));
    assert_eq!(token_call(&s).await.unwrap().0, 502);
    assert_eq!(token_call(&s).await.unwrap().0, 500);
    assert_eq!(token_call(&s).await.unwrap().0, 500);
    s.emu.set_fault(Endpoint::Token, None);
    assert_eq!(token_call(&s).await.unwrap().0, 200);
    // faults are per endpoint
    s.emu.set_fault(Endpoint::Graph, Some(Fault::Status(500)));
    assert_eq!(token_call(&s).await.unwrap().0, 200);
}

#[tokio::test]
async fn numbers_as_strings() {
    let s = setup().await;
    s.emu.push_fault(Endpoint::Token, Fault::NumbersAsStrings);
    let (st, _, body) = token_call(&s).await.unwrap();
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["expires_in"], "3599");
    assert_eq!(v["ext_expires_in"], "3599");
    let (_, _, body) = token_call(&s).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["expires_in"], 3599);
}

#[tokio::test]
async fn reset_and_truncated_are_transport_errors() {
    let s = setup().await;
    s.emu.push_fault(Endpoint::Token, Fault::Reset);
    let e = token_call(&s).await.unwrap_err();
    assert!(e.status().is_none(), "{e:?}");
    s.emu.push_fault(Endpoint::Token, Fault::Truncated);
    // headers arrive (200, a Content-Length larger than the body), then the body fails
    let resp = s
        .client
        .post(format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            s.emu.authority_host()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let declared = resp.content_length().unwrap();
    let e = resp.bytes().await.unwrap_err();
    assert!(e.is_body() || e.is_decode() || e.is_request(), "{e:?}");
    assert!(declared > 100);
    // and the next request is served normally
    assert_eq!(token_call(&s).await.unwrap().0, 200);
    let statuses: Vec<u16> = s
        .emu
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::Token)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![0, 200, 200]);
}

#[tokio::test]
async fn delay_then_normal_answer() {
    let s = setup().await;
    s.emu
        .push_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));
    let slow = tokio::time::timeout(Duration::from_millis(100), token_call(&s)).await;
    assert!(slow.is_err(), "answered before the delay");
    s.emu
        .push_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(50)));
    assert_eq!(token_call(&s).await.unwrap().0, 200);
}

#[tokio::test]
async fn hang_never_answers_and_shutdown_ends_it() {
    let s = setup().await;
    s.emu.push_fault(Endpoint::Token, Fault::Hang);
    let client = s.client.clone();
    let url = format!("{}/{TENANT}/oauth2/v2.0/token", s.emu.authority_host());
    let call = tokio::spawn(async move { client.post(url).body("x=1").send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished());
    assert_eq!(s.emu.request_count(Endpoint::Token), 1);
    assert_eq!(s.emu.requests()[0].status, 0);
    s.emu.shutdown().await;
    let r = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("shutdown closes hanging connections")
        .unwrap();
    assert!(r.is_err());
}

#[tokio::test]
async fn gate_holds_until_released() {
    let s = setup().await;
    let gate = Gate::new();
    s.emu
        .set_fault(Endpoint::Token, Some(Fault::Hold(gate.clone())));
    let mut calls = Vec::new();
    for _ in 0..3 {
        let s2 = Setup {
            emu: s.emu.clone(),
            issuer: s.issuer.clone(),
            sa: s.sa.clone(),
            client: s.client.clone(),
        };
        calls.push(tokio::spawn(
            async move { token_call(&s2).await.unwrap().0 },
        ));
    }
    tokio::time::timeout(Duration::from_secs(10), gate.wait_for_waiting(3))
        .await
        .unwrap();
    assert_eq!(gate.waiting(), 3);
    assert!(calls.iter().all(|c| !c.is_finished()));
    gate.release();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert_eq!(gate.waiting(), 0);
    // an open gate no longer holds
    assert_eq!(token_call(&s).await.unwrap().0, 200);
    assert_eq!(s.emu.request_count(Endpoint::Token), 4);
}

#[tokio::test]
async fn control_endpoint() {
    let s = setup().await;
    let base = s.emu.authority_host();
    let r = s
        .client
        .post(format!("{base}/_emulator/faults"))
        .body(r#"{"endpoint":"token","fault":{"status":503}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .post(format!("{base}/_emulator/faults"))
        .body(r#"{"endpoint":"Token","fault":{"throttle":{"seconds":7}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(token_call(&s).await.unwrap().0, 503);
    let (st, h, _) = token_call(&s).await.unwrap();
    assert_eq!((st, h["retry-after"].to_str().unwrap()), (429, "7"));
    // Entra's error answer for any code, in Entra's shape.
    let r = s
        .client
        .post(format!("{base}/_emulator/faults"))
        .body(r#"{"endpoint":"token","fault":{"entra":[400,"invalid_request",50196,"Loop detected."]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, _, body) = token_call(&s).await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 400);
    assert_eq!(answer["error"], "invalid_request");
    assert_eq!(answer["error_codes"], serde_json::json!([50196]));
    let description = answer["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS50196: Loop detected.\r\nTrace ID: "),
        "{description}"
    );
    let bad = s
        .client
        .post(format!("{base}/_emulator/faults"))
        .body(r#"{"endpoint":"nope","fault":"hang"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let list = s
        .client
        .get(format!("{base}/_emulator/requests"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await
        .unwrap();
    let tokens: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["endpoint"] == "token")
        .collect();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[0]["status"], 503);
    assert_eq!(tokens[2]["status"], 400);
    assert_eq!(tokens[0]["client_id"], CLIENT);
    assert!(tokens[0]["form"].get("client_assertion").is_none());
    assert!(s.emu.request_count(Endpoint::Control) >= 3);
}

/// A fault at a rate: the same seed gives the same sequence (from the API and the control API),
/// another seed another; the queue comes first and is not drawn for; `clear_faults` ends it.
#[tokio::test]
async fn a_fault_at_a_rate_follows_its_seed() {
    let s = setup().await;
    let statuses = || async {
        let mut v = Vec::new();
        for _ in 0..40 {
            v.push(token_call(&s).await.unwrap().0);
        }
        v
    };
    s.emu
        .set_fault_rate(Endpoint::Token, Fault::Status(503), 250, 7);
    let first = statuses().await;
    let injected = first.iter().filter(|&&st| st == 503).count();
    assert!((3..=20).contains(&injected), "{first:?}");
    assert_eq!(
        first.len() - injected,
        first.iter().filter(|&&st| st == 200).count()
    );
    assert_eq!(s.emu.rate_faults_injected(Endpoint::Token), injected);

    s.emu.push_fault(Endpoint::Token, Fault::Status(502));
    s.emu
        .set_fault_rate(Endpoint::Token, Fault::Status(503), 250, 7);
    assert_eq!(token_call(&s).await.unwrap().0, 502);
    assert_eq!(statuses().await, first);

    let r = s
        .client
        .post(format!("{}/_emulator/faults", s.emu.authority_host()))
        .body(r#"{"endpoint":"token","fault":{"status":503},"per_mille":250,"seed":7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(statuses().await, first);

    s.emu
        .set_fault_rate(Endpoint::Token, Fault::Status(503), 250, 8);
    assert_ne!(statuses().await, first);

    s.emu.clear_faults();
    assert_eq!(s.emu.rate_faults_injected(Endpoint::Token), 0);
    assert_eq!(statuses().await, vec![200; 40]);
}
