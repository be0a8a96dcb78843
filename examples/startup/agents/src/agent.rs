//! The MCP server side: which tools a role has, and dispatching calls to them.

use std::{path::PathBuf, sync::Arc};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
};

use crate::{roles, work::Call};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Cto,
    Devops,
    Qa,
}

impl Role {
    fn title(self) -> &'static str {
        match self {
            Role::Cto => "startup-cto",
            Role::Devops => "startup-devops",
            Role::Qa => "startup-qa",
        }
    }

    fn instructions(self) -> &'static str {
        match self {
            Role::Cto => {
                "The CTO of the virtual startup: designs the architecture of a product and \
                 has DevOps provision it (through Baton)."
            }
            Role::Devops => "DevOps of the virtual startup: provisions environments and deploys.",
            Role::Qa => "QA of the virtual startup: runs the test plan of a release.",
        }
    }

    fn tools(self) -> Vec<Tool> {
        match self {
            Role::Cto => vec![roles::cto::design_architecture_tool()],
            Role::Devops => vec![
                roles::devops::provision_tool(),
                roles::devops::deploy_tool(),
            ],
            Role::Qa => vec![roles::qa::run_test_plan_tool()],
        }
    }
}

/// What every call of this process shares.
pub struct Settings {
    pub role: Role,
    /// Baton's base URL (no `/mcp`), for agents that delegate.
    pub baton_url: Option<String>,
    pub state_dir: PathBuf,
    pub pace: f64,
}

#[derive(Clone)]
pub struct Agent {
    settings: Arc<Settings>,
}

impl Agent {
    pub fn from_env(role: Role) -> anyhow::Result<Agent> {
        let state_dir = std::env::var_os("STARTUP_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".state"));
        std::fs::create_dir_all(&state_dir)?;
        let pace = match std::env::var("STARTUP_PACE") {
            Ok(raw) => raw
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| anyhow::anyhow!("STARTUP_PACE must be a number >= 0, got {raw}"))?,
            Err(_) => 1.0,
        };
        let baton_url = std::env::var("BATON_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|u| u.trim_end_matches('/').to_owned());
        Ok(Agent {
            settings: Arc::new(Settings {
                role,
                baton_url,
                state_dir,
                pace,
            }),
        })
    }
}

#[expect(
    deprecated,
    reason = "logging is deprecated by SEP-2577 but Baton still shows it as task logs"
)]
impl ServerHandler for Agent {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                self.settings.role.title(),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(self.settings.role.instructions())
    }

    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.settings.role.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.settings
            .role
            .tools()
            .into_iter()
            .find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let call = Call::new(&self.settings, &context);
        let args = request.arguments.unwrap_or_default();
        let result = match (self.settings.role, request.name.as_ref()) {
            (Role::Cto, "design_architecture") => {
                roles::cto::design_architecture(&call, args).await?
            }
            (Role::Devops, "provision") => roles::devops::provision(&call, args).await?,
            (Role::Devops, "deploy") => roles::devops::deploy(&call, args).await?,
            (Role::Qa, "run_test_plan") => roles::qa::run_test_plan(&call, args).await?,
            (_, name) => {
                return Err(McpError::invalid_params(
                    format!("unknown tool: {name}"),
                    None,
                ));
            }
        };
        Ok(result.into())
    }
}
