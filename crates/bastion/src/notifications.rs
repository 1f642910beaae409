//! The core's notification port ([`bastion_core::notify::NotificationSink`]) on the
//! delivery engine of `bastion-notify`: queues per destination, retries with backoff,
//! batching and rate limits (docs/notifications.md).

use crate::outbound::OutboundRoutes;
use bastion_core::notify::{NotificationKind, NotificationSink, OutgoingNotification};
use bastion_notify::{
    Batch, Content, Delivery, DeliveryPolicy, Notifier, NotifierConfig, PendingPolicy, RateLimit,
};
use std::sync::Arc;

/// Notifications sent as this CSE, over the routes of [`OutboundRoutes`]: a receiver behind
/// another CSE is reached over the security association with that CSE.
pub struct EngineSink {
    notifier: Notifier,
}

impl EngineSink {
    /// Must run inside the Tokio runtime that will carry the deliveries. `limits` gives
    /// the queues' byte budgets (`[limits]`).
    pub fn new(
        cse_id: &str,
        routes: Arc<OutboundRoutes>,
        limits: &crate::limits::Limits,
    ) -> EngineSink {
        let config = NotifierConfig {
            originator: cse_id.to_owned(),
            release: bastion_core::config::NOTIFICATION_RELEASE.rvi().to_owned(),
            max_destination_bytes: limits.notification_destination_bytes,
            max_total_bytes: limits.notification_total_bytes,
            ..NotifierConfig::default()
        };
        EngineSink {
            notifier: Notifier::new(config, routes),
        }
    }
}

impl EngineSink {
    /// Tells `cse` of every delivery attempt, for the subscriptions' statistics
    /// (`nse`, `nsi`). The CSE is held weakly: the sink belongs to it.
    pub fn observe(&self, cse: &Arc<bastion_core::Cse>) {
        self.notifier
            .observe(Arc::new(StatisticsObserver(Arc::downgrade(cse))));
    }
}

/// Delivery attempts, passed on to the CSE that keeps the statistics.
struct StatisticsObserver(std::sync::Weak<bastion_core::Cse>);

impl bastion_notify::DeliveryObserver for StatisticsObserver {
    fn attempted(&self, subscription: &str, to: &str, answered: bool) {
        if let Some(cse) = self.0.upgrade() {
            cse.delivery_attempted(subscription, to, answered);
        }
    }
}

impl NotificationSink for EngineSink {
    fn submit(&self, n: OutgoingNotification) -> Result<(), String> {
        let policy = DeliveryPolicy {
            batch: n.batch.map(|(num, dur)| Batch { num, dur }),
            latest_only: n.latest_only,
            rate: n.rate.map(|(max, window)| RateLimit { max, window }),
            pending: if n.pending_latest {
                PendingPolicy::SendLatest
            } else {
                PendingPolicy::SendAllPending
            },
        };
        self.notifier
            .submit(Delivery {
                subscription: n.subscription,
                targets: n.targets,
                to: n.to,
                peer: n.peer,
                event: n.event,
                content: match n.kind {
                    NotificationKind::Event => Content::Notification,
                    NotificationKind::Response => Content::Response,
                },
                policy,
            })
            .map_err(|e| e.to_string())
    }

    fn flush(&self, subscription: &str) {
        let notifier = self.notifier.clone();
        let subscription = subscription.to_owned();
        tokio::spawn(async move { notifier.flush(&subscription).await });
    }
}
