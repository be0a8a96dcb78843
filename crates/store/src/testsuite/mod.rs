//! The conformance suite: behaviour every [`Store`](crate::Store) implementation must show.
//!
//! Each test is an `async fn(&dyn Store)` taking a fresh, empty store. An implementation
//! instantiates all of them with [`store_test_suite!`](crate::store_test_suite):
//!
//! ```text
//! baton_store::store_test_suite!(crate::fresh_sqlite_store);
//! ```
//! where the factory is `async fn() -> (Box<dyn Store>, impl Drop-guard)`.

/// Generates one `#[tokio::test]` per conformance test, each with a fresh store from
/// `$factory`.
#[macro_export]
macro_rules! store_test_suite {
    ($factory:path) => {
        $crate::store_test_suite!(@tests $factory;
            create_and_get, idempotency_keys, claim_order, claim_leases_once,
            delayed_tasks_wait, paused_queues_are_skipped, concurrency_limits,
            finish_is_fenced, retry_transition, final_failure, progress_is_fenced,
            cancel_pending_and_running, manual_retry, reschedule_pending_only,
            expired_leases_are_rescued,
            release_by_owner_does_not_count, stale_worker_cannot_finish,
            expired_lease_cannot_write_before_rescue, purge_oldest_first,
            finished_tasks_expire_after_their_own_ttl, logs_are_ordered_trimmed_and_purged,
            analytics_aggregate_a_window_of_tasks,
            event_log_order, list_filters_and_cursor, queue_stats_and_active_count,
            recent_durations, heartbeat_extends_own_leases, checkpoints_are_fenced,
            input_round_trip, servers_crud, create_and_claim_in_order, peers_lifecycle,
            singleton_is_held, workflows_lifecycle, workflow_updates_are_conditional,
            workflow_retry_and_cancel_move_steps_with_it,
            running_workflows_keep_their_steps, children_of_a_task,
            hostile_text_is_stored_escaped, runs_are_told_apart_by_lease_token,
            idempotency_conflicts_refuse_the_whole_write,
            retention_keeps_what_a_retry_or_a_parent_needs,
            queues_belong_to_their_principal, keys_lifecycle,
            audit_log_appends_lists_and_purges, shared_secrets_and_ended_sessions,
            schedules_fire_each_tick_once, rate_limits_hold_across_claims,
            fair_shares_rotate_between_groups, group_max_limits_running_per_group,
webhook_deliveries_are_written_with_their_events,
            delivery_claims_are_leased_once, delivery_backoff_and_dead_letter,
            deliveries_page_newest_first, server_health_changes_are_enqueued_once,
            result_cache_hits_and_single_flight, failed_calls_release_their_followers,
            large_documents_round_trip,
            archive_batches_complete_once, archived_workflows_take_their_steps);
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = $factory().await;
                $crate::testsuite::$name(&*store).await;
            }
        )*
    };
}

mod analytics;
mod archive;
mod cache;
mod claims;
mod input;
mod keys;
mod leases;
mod peers;
mod queues;
mod runs;
mod schedules;
mod support;
mod tasks;
mod webhooks;
mod workflows;

pub use analytics::analytics_aggregate_a_window_of_tasks;
pub use archive::{archive_batches_complete_once, archived_workflows_take_their_steps};
pub use cache::{
    failed_calls_release_their_followers, large_documents_round_trip,
    result_cache_hits_and_single_flight,
};
pub use claims::{
    claim_leases_once, claim_order, concurrency_limits, create_and_claim_in_order,
    delayed_tasks_wait, fair_shares_rotate_between_groups, group_max_limits_running_per_group,
    paused_queues_are_skipped, queues_belong_to_their_principal, rate_limits_hold_across_claims,
};
pub use input::{checkpoints_are_fenced, input_round_trip};
pub use keys::{audit_log_appends_lists_and_purges, keys_lifecycle};
pub use leases::{
    expired_lease_cannot_write_before_rescue, expired_leases_are_rescued,
    heartbeat_extends_own_leases, release_by_owner_does_not_count,
};
pub use peers::{
    peers_lifecycle, servers_crud, shared_secrets_and_ended_sessions, singleton_is_held,
};
pub use queues::{queue_stats_and_active_count, recent_durations};
pub use runs::{
    final_failure, finish_is_fenced, progress_is_fenced, retry_transition,
    runs_are_told_apart_by_lease_token, stale_worker_cannot_finish,
};
pub use schedules::schedules_fire_each_tick_once;
pub use tasks::{
    cancel_pending_and_running, children_of_a_task, create_and_get, event_log_order,
    finished_tasks_expire_after_their_own_ttl, hostile_text_is_stored_escaped,
    idempotency_conflicts_refuse_the_whole_write, idempotency_keys, list_filters_and_cursor,
    logs_are_ordered_trimmed_and_purged, manual_retry, purge_oldest_first, reschedule_pending_only,
};
pub use webhooks::{
    deliveries_page_newest_first, delivery_backoff_and_dead_letter,
    delivery_claims_are_leased_once, server_health_changes_are_enqueued_once,
    webhook_deliveries_are_written_with_their_events,
};
pub use workflows::{
    retention_keeps_what_a_retry_or_a_parent_needs, running_workflows_keep_their_steps,
    workflow_retry_and_cancel_move_steps_with_it, workflow_updates_are_conditional,
    workflows_lifecycle,
};
