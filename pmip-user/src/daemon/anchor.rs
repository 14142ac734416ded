//! The anchor side: the registrar (LMA or HA — one runner for both) with
//! no access link; the runner answers `pmipctl` and forwards releases.
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};

use super::aaa::AnchorAaa;
use super::control::{self, CtlRequest, ShowCtx};
use super::fastpath::SharedDp;
use crate::agent::registrar::{AnchorCommand, AnchorEvent};
use crate::agent::shell::{self, Handle};
use crate::agent::{Endpoint, Transport};
use crate::config::Config;
use crate::ctl::{Request, Response};

async fn on_ctl(
    cfg: &Config,
    h: &Handle<AnchorCommand, AnchorEvent>,
    dp: &SharedDp,
    req: Request,
) -> Response {
    let report = h.report().await.unwrap_or_default();
    if let Request::ClearBinding { nai } = req {
        let found = report.bindings.iter().any(|b| b.nai == nai);
        if found {
            h.command(AnchorCommand::Release { nai: nai.clone() });
        }
        return Response::Cleared { nai, found };
    }
    let core = cfg.interfaces.core.clone();
    let ctx = ShowCtx {
        cfg,
        dp,
        interface: &|_| core.clone(),
        groups: Vec::new(),
    };
    control::show(&ctx, &req, &report)
}

/// Runs an anchor registrar (LMA or HA) until `stop`.
pub(super) async fn run<E, T>(
    cfg: &Config,
    (ep, transport): (E, T),
    dp: SharedDp,
    mut ctl: mpsc::Receiver<CtlRequest>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<()>
where
    E: Endpoint<Command = AnchorCommand, Event = AnchorEvent> + Send + 'static,
    T: Transport + 'static,
{
    let (mut aaa, aaa_dp) = AnchorAaa::start(cfg, dp.clone()).await?;
    let mut h = shell::spawn(ep, transport, aaa_dp);
    ready();
    loop {
        tokio::select! {
            Some(ev) = h.events.recv() => {
                tracing::debug!(?ev, "binding");
                aaa.on_event(ev, &mut h).await;
            }
            x = aaa.recv() => aaa.on_input(x, &h).await,
            Some((req, reply)) = ctl.recv() => {
                let r = match req {
                    Request::ShowAaa => aaa.show(control::role_name(cfg)).await,
                    req => on_ctl(cfg, &h, &dp, req).await,
                };
                let _ = reply.send(r);
            }
            _ = &mut stop => break,
        }
    }
    h.stop(Duration::from_secs(2)).await;
    aaa.shutdown().await;
    Ok(())
}
