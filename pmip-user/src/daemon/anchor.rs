//! The anchor side: the registrar (LMA or HA — one runner for both) with
//! no access link; the runner answers `pmipctl` and forwards releases.
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};

use super::aaa::AnchorAaa;
use super::control::{self, CtlRequest, ShowCtx};
use super::fastpath::SharedDp;
use super::reload::Reloader;
use super::stop::{self, StopMode};
use crate::agent::registrar::{AnchorCommand, AnchorEvent};
use crate::agent::shell::{self, Handle};
use crate::agent::{Endpoint, Transport};
use crate::config::Config;
use crate::ctl::{Request, Response};
use crate::store::Store;

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
        return Response::Cleared {
            nai,
            found,
            refusal: false,
        };
    }
    if let Request::ClearPeer { peer, realm } = req {
        return match control::peer_release(cfg, &report, (&peer, realm.as_deref())) {
            Ok((addr, bindings)) => {
                if bindings > 0 {
                    let realm = realm.clone();
                    h.command(AnchorCommand::ReleasePeer { peer: addr, realm });
                }
                Response::ClearedPeer {
                    peer,
                    realm,
                    bindings,
                }
            }
            Err(message) => Response::Error { message },
        };
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

/// Runs an anchor registrar (LMA or HA) until `stop` or `pmipctl shutdown`.
pub(super) async fn run<E, T>(
    (cfg, reloader): (&Config, &Reloader),
    (ep, transport): (E, T),
    (dp, store): (SharedDp, Box<dyn Store>),
    mut ctl: mpsc::Receiver<CtlRequest>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<StopMode>
where
    E: Endpoint<Command = AnchorCommand, Event = AnchorEvent> + Send + 'static,
    T: Transport + 'static,
{
    let (mut aaa, aaa_dp) = AnchorAaa::start(cfg, dp.clone()).await?;
    let mut h = shell::spawn(ep, transport, aaa_dp, store);
    ready();
    let mode = loop {
        tokio::select! {
            Some(ev) = h.events.recv() => {
                tracing::debug!(?ev, "binding");
                aaa.on_event(ev, &mut h).await;
            }
            x = aaa.recv() => aaa.on_input(x, &h).await,
            Some((req, reply)) = ctl.recv() => {
                if let Request::Shutdown { deregister } = req {
                    let bindings = h.report().await.map_or(0, |r| r.bindings.len());
                    let _ = reply.send(Response::ShuttingDown { deregister, bindings });
                    break if deregister { StopMode::Release } else { StopMode::Keep };
                }
                let r = match req {
                    Request::Reload => reloader.serve(|new| async {
                        h.command(AnchorCommand::Reconfigure(new));
                        // Taken in order: answered once the registrar has it.
                        let _ = h.report().await;
                    }).await,
                    Request::ShowAaa => aaa.show(control::role_name(cfg)).await,
                    req => on_ctl(cfg, &h, &dp, req).await,
                };
                let _ = reply.send(r);
            }
            _ = &mut stop => break StopMode::Keep,
        }
    };
    if mode == StopMode::Release {
        // The end of service: every binding revoked, so the access
        // gateways let go of their subscribers too.
        let nais: Vec<String> = h
            .report()
            .await
            .map(|r| r.bindings.into_iter().map(|b| b.nai).collect())
            .unwrap_or_default();
        tracing::info!("shutting down: revoking {} binding(s)", nais.len());
        for nai in nais {
            h.command(AnchorCommand::Release { nai });
        }
        let left = stop::drain(&h, stop::release_grace(cfg)).await;
        if left > 0 {
            tracing::warn!(left, "bindings not released in time");
        }
    } else {
        tracing::info!("stopping: bindings stay in the store and the pinned fast path");
    }
    h.stop(Duration::from_secs(2)).await;
    aaa.shutdown().await;
    Ok(mode)
}

/// Runs this anchor as a member of a cluster (`[cluster]`, issue 17) until
/// `stop`: the cluster serves the service addresses that fall to it; the
/// runner answers `pmipctl` from all of them.
pub(super) async fn run_cluster(
    (cfg, reloader): (&Config, &Reloader),
    dp: SharedDp,
    mut ctl: mpsc::Receiver<CtlRequest>,
    mut stop: oneshot::Receiver<()>,
    ready: impl FnOnce(),
) -> Result<()> {
    let cluster = crate::cluster::Cluster::start(cfg, dp.clone()).await?;
    ready();
    loop {
        tokio::select! {
            Some((req, reply)) = ctl.recv() => {
                let r = match req {
                    Request::Reload => reloader.serve(|new| async {
                        cluster.command(AnchorCommand::Reconfigure(new)).await;
                        // Taken in order by every service: answered once
                        // they have it.
                        let _ = cluster.report().await;
                    }).await,
                    Request::ShowCluster => match cluster.show().await {
                        Some(v) => Response::Cluster(v),
                        None => Response::Error { message: "the cluster has stopped".into() },
                    },
                    Request::ClearBinding { nai } => {
                        let found = cluster.report().await.bindings.iter().any(|b| b.nai == nai);
                        cluster.command(AnchorCommand::Release { nai: nai.clone() }).await;
                        Response::Cleared { nai, found, refusal: false }
                    }
                    Request::ClearPeer { peer, realm } => {
                        let report = cluster.report().await;
                        match control::peer_release(cfg, &report, (&peer, realm.as_deref())) {
                            Ok((addr, bindings)) => {
                                let realm2 = realm.clone();
                                cluster.command(AnchorCommand::ReleasePeer { peer: addr, realm: realm2 }).await;
                                Response::ClearedPeer { peer, realm, bindings }
                            }
                            Err(message) => Response::Error { message },
                        }
                    }
                    Request::Shutdown { deregister } => {
                        let _ = reply.send(Response::ShuttingDown { deregister, bindings: 0 });
                        break;
                    }
                    other => {
                        let core = cfg.interfaces.core.clone();
                        let ctx = ShowCtx { cfg, dp: &dp, interface: &|_| core.clone(), groups: Vec::new() };
                        control::show(&ctx, &other, &cluster.report().await)
                    }
                };
                let _ = reply.send(r);
            }
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_secs(1)), if cluster.is_finished() => {
                anyhow::bail!("the cluster control loop ended");
            }
        }
    }
    // Bindings stay in etcd: the other members take the addresses over.
    cluster.stop().await;
    Ok(())
}
