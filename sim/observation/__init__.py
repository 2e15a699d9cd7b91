"""What the simulator shows sensor planners beyond tracked boxes: a simulated LiDAR point cloud."""
