//! "A service with three instances": run this program three times (three terminals, hosts
//! or pods) against one cluster and the instances share the partitions of `orders` as the
//! consumer group `billing`. Kill one: after its session timeout its partitions move to
//! the others, which resume at its last commit. Events of one key (one order) are handled
//! one after another, in order; different orders in parallel.
//!
//! ```sh
//! evlog topic create orders --partitions 6 --replication-factor 3
//! cargo run --release -p evlog-client --example billing_service -- 127.0.0.1:7101 pod-a
//! ```
//!
//! The optional second argument is an instance id (static membership): a restarted
//! instance with the same id takes its partitions back without a rebalance.

use evlog_client::{Client, ClientError, ConsumerConfig, ReceivedEvent};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:7101".to_owned());
    let client = Client::connect([bootstrap]).await?;
    let mut config = ConsumerConfig::new("billing")
        .subscribe(["orders"])
        .on_assigned(|partitions| eprintln!("now handling {partitions:?}"))
        .on_revoked(|partitions| eprintln!("handing over {partitions:?}"));
    if let Some(instance) = args.next() {
        config = config.with_instance_id(instance);
    }
    let mut consumer = client.consumer(config)?;
    let charge = |event: ReceivedEvent| async move {
        // A real service would charge the order here; a replay after a crash must be
        // harmless, so key the charge by the event's (partition, offset) or an order id.
        let order = String::from_utf8_lossy(event.key.as_deref().unwrap_or_default()).into_owned();
        println!("charged {order} at {}/{}", event.partition, event.offset);
    };
    tokio::select! {
        result = consumer.process_keyed(16, charge) => result?,
        _ = tokio::signal::ctrl_c() => eprintln!("stopping: committing and leaving the group"),
    }
    consumer.close().await;
    Ok(())
}
