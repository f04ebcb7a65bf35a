import SegCore
print("unet: under construction")
