//! A group: servers that are replicas of each other, addressed as `group__tool`. Each call
//! goes to a healthy member with the fewest calls in flight; a call resuming an upstream
//! task goes back to the member that holds that task.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use baton_engine::tools::{ToolCallError, ToolContext, ToolInfo, ToolOutput, ToolProvider};
use baton_store::{ConcurrencyLimit, ToolSelector};
use serde_json::Value;

use crate::call::UpstreamTaskCheckpoint;
use crate::server::{Server, tool_info};

pub struct Group {
    pub name: String,
    members: RwLock<Vec<Arc<Server>>>,
}

impl Group {
    pub fn new(name: &str) -> Arc<Group> {
        Arc::new(Group {
            name: name.to_string(),
            members: RwLock::new(Vec::new()),
        })
    }

    pub fn add(&self, s: Arc<Server>) {
        self.members
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
    }

    /// Removes a member; `true` when the group is now empty.
    pub fn remove(&self, name: &str) -> bool {
        let mut m = self.members.write().unwrap_or_else(|e| e.into_inner());
        m.retain(|s| s.name() != name);
        m.is_empty()
    }

    pub fn members(&self) -> Vec<Arc<Server>> {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The healthy member offering `tool` with the fewest calls in flight.
    pub fn pick(&self, tool: &str) -> Option<Arc<Server>> {
        self.members()
            .into_iter()
            .filter(|s| {
                s.is_available().is_ok() && s.upstream_tools().iter().any(|t| t.name == tool)
            })
            .min_by_key(|s| s.in_flight())
    }
}

#[async_trait]
impl ToolProvider for Group {
    fn tools(&self) -> Vec<ToolInfo> {
        let mut out: Vec<ToolInfo> = Vec::new();
        for s in self.members() {
            for t in s.upstream_tools().iter() {
                if !out.iter().any(|o| o.name == t.name) {
                    out.push(tool_info(t));
                }
            }
        }
        out
    }

    fn tool(&self, name: &str) -> Option<ToolInfo> {
        self.members().iter().find_map(|s| s.tool(name))
    }

    async fn call(
        &self,
        tool: &str,
        arguments: Value,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolCallError> {
        if let Some(cp) = UpstreamTaskCheckpoint::from_context(&ctx)
            && let Some(holder) = self.members().into_iter().find(|s| s.name() == cp.server)
        {
            return holder.call_tool(tool, arguments, &ctx).await;
        }
        let Some(member) = self.pick(tool) else {
            return Err(ToolCallError::new(
                "upstream_unavailable",
                format!("no healthy member of group `{}` offers `{tool}`", self.name),
                true,
            ));
        };
        tracing::debug!(group = %self.name, member = member.name(), tool, "routed to group member");
        member.call_tool(tool, arguments, &ctx).await
    }

    fn claim_limits(&self, server: &str, separator: &str) -> Vec<ConcurrencyLimit> {
        let members = self.members();
        let caps: Option<u32> = members.iter().map(|m| m.config.max_concurrency).sum();
        match caps {
            Some(max) if !members.is_empty() => vec![ConcurrencyLimit {
                selector: ToolSelector::Prefix(format!("{server}{separator}")),
                max,
            }],
            _ => Vec::new(),
        }
    }

    /// Replicas answer alike: the first member that sets a cache setting gives it.
    fn cache(&self) -> Option<baton_engine::cache::CacheSetting> {
        self.members().iter().find_map(|m| m.cache())
    }

    /// Starting while no member knows its tools yet.
    fn starting(&self) -> bool {
        let members = self.members();
        !members.is_empty() && members.iter().all(|m| m.starting())
    }

    fn availability(&self) -> Result<(), String> {
        let members = self.members();
        if members.iter().any(|m| m.is_available().is_ok()) {
            return Ok(());
        }
        let why: Vec<String> = members
            .iter()
            .filter_map(|m| m.is_available().err())
            .collect();
        Err(format!(
            "no member of group `{}` is available: {}",
            self.name,
            if why.is_empty() {
                "it has no members".into()
            } else {
                why.join("; ")
            }
        ))
    }
}
