//! Planning `/aurora rebuild CLUSTER --in REGION` (the run is `runbook::rebuild`'s): after the
//! cluster's last successful detach, read what the rebuild copies and which identifiers are free.

use super::Approvals;
use crate::runbook::plan::{Plan, Unplanned};
use crate::runbook::rebuild::Reads;
use crate::settings::ClusterSettings;
use crate::types::Region;

impl Approvals {
    /// The rebuild of `c` with a new secondary in `region`, planned from the cluster's last
    /// successful detach (the promoted cluster) and the old primary in `region`.
    pub(super) async fn plan_rebuild(&self, c: &ClusterSettings, region: Option<&Region>) -> Result<Plan, Unplanned> {
        let Some(region) = region else {
            return Err(Unplanned::Other(format!(
                "say where the new secondary goes: /aurora rebuild {} --in REGION",
                c.name
            )));
        };
        let detached = crate::status::past(self.store.as_ref(), c)
            .await
            .last_success
            .filter(|(_, p)| p.mode == crate::types::Mode::Detach)
            .map(|(id, p)| (id, p.to));
        let reads = Reads {
            aurora: self.aurora.as_ref(),
            provisioning: self.launcher.runner.provisioning.as_ref(),
            permissions: Some(self.permissions.as_ref()),
        };
        let mut plan = reads.plan(c, region, detached).await?;
        // `c` follows a recorded global cluster; the record of the new one replaces what the config names.
        if let (Some(r), Some(configured)) = (plan.rebuild.as_mut(), self.settings.cluster(c.name.as_str())) {
            r.replaces = configured.global_cluster_id.clone();
        }
        Ok(plan)
    }
}
