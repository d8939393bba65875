"""One dynamic partition per submitted building; its key is also a folder name."""

from dagster import DynamicPartitionsDefinition

from ceilgrid_assets.contract import BUILDINGS

building_partitions = DynamicPartitionsDefinition(name=BUILDINGS)
