-- MySQL / MariaDB: inline comments, ENUM, AUTO_INCREMENT, table options.
CREATE TABLE `customers` (
  `customer_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'Surrogate key',
  `email` VARCHAR(320) NOT NULL COMMENT 'Where receipts go',
  `tier` ENUM('free','plus','pro') NOT NULL DEFAULT 'free',
  `score` DOUBLE NULL,
  `active` TINYINT(1) NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`customer_id`),
  UNIQUE KEY `uq_email` (`email`),
  KEY `ix_tier` (`tier`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Everyone who ever bought something';
