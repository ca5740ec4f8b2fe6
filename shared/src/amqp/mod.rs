//! RabbitMQ: the topology both binaries declare, and a supervised, self-healing link.

pub mod dead_header;
pub mod dead_letters;
pub mod link;
pub mod queue_depths;
pub mod topology;

pub use link::{BrokerLink, LinkConfig, PublishError, TopologyScope, check_url};
pub use topology::Topology;
