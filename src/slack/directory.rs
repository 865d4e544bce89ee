//! The engine's `Directory` port: Slack user-group membership, cached briefly so that a click does not
//! wait on Slack every time (clicks must be answered within 3 seconds).
//!
//! Because membership decides who may approve, a stale answer is used only when Slack is slow or
//! failing for the moment, and only for a few minutes; when Slack says no (the group does not exist,
//! the token is refused), that is the answer.

use super::client::{SendError, SlackApi};
use crate::ports::{ChatError, Directory};
use crate::types::{SlackUserId, UserGroupId};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fresh enough to use without asking Slack again.
const FRESH: Duration = Duration::from_secs(60);
/// Old but usable while Slack is slow or failing for the moment.
const STALE_LIMIT: Duration = Duration::from_secs(300);
/// How long a lookup may take while a click waits.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);

pub struct SlackDirectory {
    api: Arc<SlackApi>,
    /// Group members and when they were read.
    cache: Mutex<HashMap<UserGroupId, (Instant, Vec<SlackUserId>)>>,
}

impl SlackDirectory {
    pub fn new(api: Arc<SlackApi>) -> Self {
        SlackDirectory {
            api,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Directory for SlackDirectory {
    async fn members(&self, group: &UserGroupId) -> Result<Vec<SlackUserId>, ChatError> {
        let cached = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(group).cloned();
        if let Some((at, members)) = &cached
            && at.elapsed() < FRESH
        {
            return Ok(members.clone());
        }
        let why = match tokio::time::timeout(LOOKUP_TIMEOUT, self.api.group_members(group)).await {
            Ok(Ok(members)) => {
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(group.clone(), (Instant::now(), members.clone()));
                return Ok(members);
            }
            Ok(Err(SendError::Permanent(why) | SendError::Auth(why))) => {
                return Err(ChatError(format!("usergroups.users.list for {group}: {why}")));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        match cached {
            Some((at, members)) if at.elapsed() < STALE_LIMIT => Ok(members),
            _ => Err(ChatError(format!("usergroups.users.list for {group}: {why}"))),
        }
    }
}
