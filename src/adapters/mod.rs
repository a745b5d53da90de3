//! The outside world behind the ports: codecs and the SeaORM repository.

pub mod codec;
pub mod faulty;
pub mod memory;
pub mod sea_orm;
