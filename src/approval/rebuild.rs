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
        let detached = crate::status::last_detach(self.store.as_ref(), c).await;
        let reads = Reads {
            aurora: self.aurora.as_ref(),
            provisioning: self.launcher.runner.provisioning.as_ref(),
            permissions: Some(self.permissions.as_ref()),
        };
        reads.plan(c, region, detached).await
    }
}
